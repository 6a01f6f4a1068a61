"""BI tools reading the warehouse, on the session's demo marts (built once, ``demo_marts``):
what they find there (only business marts in ``marts``, the lookups in ``reference``, every
table and column described in the database, every BI-facing model an exposure with its owner),
a real client reading over TCP while dbt rebuilds the tables it reads, and the docs site.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from sqlalchemy import create_engine, text

from trebol import cli, docs, summary
from trebol.warehouse import address, ddl

from ..helpers import DEMO_DATE, DemoMarts, SessionWarehouse, dbt_command, local_midnight

pytestmark = pytest.mark.integration

# the two queries of a morning dashboard: segment sizes, and value (12 months, predicted) by tier
SEGMENT_SIZES = """
    select lifecycle_stage, value_tier, count(*) as customers
    from marts.customer_segments group by 1, 2 order by 1, 2"""
VALUE_BY_TIER = """
    select segments.value_tier, count(*) as customers, sum(value.net_value_12m) as net_value_12m,
           avg(value.predicted_clv) as mean_predicted_clv
    from marts.customer_value as value
    inner join marts.customer_segments as segments on value.customer_key = segments.customer_key
    group by 1 order by 1"""
# what the nightly build replaces under the reader: the tables both queries read but
# customer_value (whose content depends on the CLV predictions other tests write)
REBUILT = ("dim_customers", "customer_rfmt", "customer_segments")
# which tables those names are now (a rebuild swaps in new ones)
TABLE_OIDS = text("select concat_ws(',', "
                  + ", ".join(f"'marts.{name}'::regclass::oid" for name in REBUILT) + ")")


def manifest(demo_marts: DemoMarts) -> dict[str, Any]:
    """dbt's manifest of the session's build of the demo marts."""
    return json.loads((demo_marts.work_dir / "target" / "manifest.json").read_text())


def _words(description: str) -> str:
    return " ".join(description.split())


def test_marts_hold_the_business_tables_and_reference_the_lookups(demo_marts: DemoMarts) -> None:
    nodes = manifest(demo_marts)["nodes"].values()
    seeds = {node["name"]: node["schema"] for node in nodes if node["resource_type"] == "seed"}
    marts = {node["name"] for node in nodes
             if node["resource_type"] == "model" and node["schema"] == "marts"}
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        tables = {}
        for schema, name in conn.execute("""select table_schema, table_name
                from information_schema.tables
                where table_schema in ('marts', 'reference', 'internal')"""):
            tables.setdefault(schema, set()).add(name)
    assert tables["marts"] == marts | set(ddl.MARTS_OWN_TABLES)
    # and their shape is a contract: names and types checked by every build, before the swap
    assert all(node["config"]["contract"]["enforced"] for node in nodes
               if node["resource_type"] == "model" and node["schema"] == "marts")
    assert not tables["marts"] & set(seeds)
    assert tables["reference"] == {name for name, schema in seeds.items() if schema == "reference"}
    assert tables["internal"] == {"placeholder_emails", "placeholder_phones", "identifier_types",
                                  "source_trust", "ecom_order_statuses"}
    assert {"lifecycle_stages", "rfm_segments", "value_tiers", "loyalty_tier_privileges"} <= \
        tables["reference"]


def test_every_mart_and_lookup_carries_its_description_in_the_database(
        demo_marts: DemoMarts) -> None:
    """persist_docs: each table of marts and reference and each of its columns has the dbt
    description as its PostgreSQL comment (what `\\d+` and a BI tool's catalog show)."""
    nodes = [node for node in manifest(demo_marts)["nodes"].values()
             if node["resource_type"] in ("model", "seed")
             and node["schema"] in ("marts", "reference")]
    assert len(nodes) > 15
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        for node in nodes:
            relation = f"{node['schema']}.{node['name']}"
            comment = conn.execute("select obj_description(%s::regclass, 'pg_class')",
                                   (relation,)).fetchone()[0]
            assert _words(comment or "") == _words(node["description"]) != "", relation
            comments = dict(conn.execute("""
                select attname, col_description(attrelid, attnum) from pg_attribute
                where attrelid = %s::regclass and attnum > 0 and not attisdropped""",
                                         (relation,)).fetchall())
            for name, column in node["columns"].items():
                assert _words(comments[name] or "") == _words(column["description"]) != "", (
                    relation, name)


def test_every_bi_facing_model_is_an_exposure_with_its_owner(demo_marts: DemoMarts) -> None:
    graph = manifest(demo_marts)
    bi_facing = {unique_id for unique_id, node in graph["nodes"].items()
                 if node["resource_type"] in ("model", "seed")
                 and node["schema"] in ("marts", "reference")}
    bi_facing |= {unique_id for unique_id, source in graph["sources"].items()
                  if source["schema"] == "marts"}  # the CLV fit's predictions
    dashboards = [exposure for exposure in graph["exposures"].values()
                  if exposure["type"] == "dashboard"]
    for exposure in dashboards:
        assert exposure["owner"]["name"] and exposure["owner"]["email"], exposure["name"]
        assert exposure["description"].strip(), exposure["name"]
    exposed = {node for exposure in dashboards for node in exposure["depends_on"]["nodes"]}
    assert bi_facing - exposed == set()
    assert exposed <= bi_facing, "a dashboard reads what BI may not"


def _add_login(capsys: pytest.CaptureFixture[str], name: str, role: str) -> str:
    """`trebol warehouse users add NAME --role ROLE`: the URL it prints, once."""
    assert cli.main(["warehouse", "users", "add", name, "--role", role]) == 0
    out, err = capsys.readouterr()
    [url] = out.splitlines()
    assert f"created login {name} in role {ddl.BI_ROLE if role == 'bi' else ddl.BI_PII_ROLE}" in err
    assert address.dsn_parts(url).password not in err
    return url


def test_a_bi_tool_reads_over_tcp_while_the_nightly_build_replaces_the_tables(
        demo_marts: DemoMarts, test_warehouse: SessionWarehouse,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """As a bi_reader login made by `trebol warehouse users add`, over TCP, with SQLAlchemy and
    pandas: the segment sizes and the value by tier, again and again while dbt rebuilds the
    tables they read. dbt-postgres builds each table as <name>__dbt_tmp and swaps it in by
    renames in one transaction (the old one dropped after the commit): a query waiting on the
    swap reads the new table, so no query fails and every answer is the same."""
    login = "test_bi_dashboard"
    url = _add_login(capsys, login, "bi")
    parts = address.dsn_parts(url)
    try:
        assert not parts.host.startswith("/"), "a BI tool connects over TCP"
        if test_warehouse.settings.uses_embedded_warehouse:
            assert (parts.host, parts.port) == ("127.0.0.1", test_warehouse.settings.warehouse_port)
        marts_url = address.build_dsn(address.DsnParts(
            parts.host, parts.port, parts.user, parts.password,
            address.dsn_parts(demo_marts.dsn).dbname))
        engine = create_engine(marts_url.replace("postgresql://", "postgresql+psycopg://"))
        # the session build's target folder: dbt parses only what changed since
        command, env = dbt_command(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select",
                                   *REBUILT, work_dir=demo_marts.work_dir)
        answers, tables_seen, rounds = set(), set(), 0
        with engine.connect() as probe:
            build = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
            while True:
                building = build.poll() is None
                sizes = pd.read_sql(text(SEGMENT_SIZES), engine)
                value = pd.read_sql(text(VALUE_BY_TIER), engine)
                answers.add((sizes.to_json(), value.to_json()))
                tables_seen.add(probe.execute(TABLE_OIDS).scalar_one())
                probe.rollback()
                rounds += 1
                if not building:
                    break
                time.sleep(0.1)  # a dashboard's pace, leaving dbt the cores it needs
        output = build.communicate()[0]
        assert build.returncode == 0, output[-3000:]
        engine.dispose()
        assert len(tables_seen) > 1, "the reader ran while the tables were replaced"
        assert len(answers) == 1, "every answer the same (the rebuild is of the same date)"
        assert rounds > 2
        print(f"{rounds} rounds of both queries, {len(tables_seen)} generations of the tables")
        assert int(sizes["customers"].sum()) == int(value["customers"].sum()) > 0
        assert set(value["value_tier"]) <= {"high_performer", "high_potential", "standard",
                                            "below_zero"}
    finally:
        with test_warehouse.connect() as admin:
            admin.execute(f"drop role if exists {login}")


def test_a_bi_login_is_refused_a_wrong_password_and_the_contact_details(
        demo_marts: DemoMarts, test_warehouse: SessionWarehouse,
        capsys: pytest.CaptureFixture[str]) -> None:
    """bi_reader's login over TCP reads no email; a wrong password is refused on the embedded
    warehouse (the machine's server in CI's external pass may trust its loopback)."""
    login = "test_bi_wrong_password"
    url = _add_login(capsys, login, "bi")
    try:
        parts = address.dsn_parts(url)
        marts = address.DsnParts(parts.host, parts.port, parts.user, parts.password,
                                 address.dsn_parts(demo_marts.dsn).dbname)
        with psycopg.connect(address.build_dsn(marts), autocommit=True) as analyst, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute("select email from marts.customer_segments limit 1")
        if test_warehouse.settings.uses_embedded_warehouse:
            wrong = address.build_dsn(address.DsnParts(parts.host, parts.port, parts.user,
                                                       "not-the-password", marts.dbname))
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(wrong, connect_timeout=5)
            for user in ("postgres", address.login_role("transformer")):  # no password: no TCP
                other = address.build_dsn(address.DsnParts(parts.host, parts.port, user, "x",
                                                           marts.dbname))
                with pytest.raises(psycopg.OperationalError):
                    psycopg.connect(other, connect_timeout=5)
        assert cli.main(["warehouse", "users", "add", login, "--role", "bi"]) == 2
        assert "exists already" in capsys.readouterr().err
    finally:
        with test_warehouse.connect() as admin:
            admin.execute(f"drop role if exists {login}")


def test_url_role_bi_is_the_embedded_warehouses_own_bi_login(
        test_warehouse: SessionWarehouse, capsys: pytest.CaptureFixture[str]) -> None:
    """`trebol warehouse url --role bi`: the same working TCP URL each time, as trebol_bi_login
    (bi_reader), its password in a file only this user may read."""
    if not test_warehouse.settings.uses_embedded_warehouse:
        assert cli.main(["warehouse", "url", "--role", "bi"]) == 2
        return
    urls = []
    for _ in range(2):
        assert cli.main(["warehouse", "url", "--role", "bi"]) == 0
        out, err = capsys.readouterr()
        urls.append(out.strip())
        assert err == ""
    assert urls[0] == urls[1]
    parts = address.dsn_parts(urls[0])
    assert (parts.host, parts.port, parts.user) == (
        "127.0.0.1", test_warehouse.settings.warehouse_port, "trebol_bi_login")
    with psycopg.connect(urls[0], connect_timeout=5) as conn:
        assert conn.execute("select current_user, pg_has_role('bi_reader', 'usage')").fetchone() \
            == ("trebol_bi_login", True)
    secret = test_warehouse.settings.home / "secrets" / "trebol_bi_login.password"
    assert secret.read_text().strip() == parts.password
    assert secret.stat().st_mode & 0o777 == 0o600
    assert secret.parent.stat().st_mode & 0o777 == 0o700


def test_docs_builds_the_dbt_site_and_links_the_data_docs(
        demo_marts: DemoMarts, test_warehouse: SessionWarehouse, tmp_path: Path,
        ) -> None:
    """`trebol docs` (its function), as the checker's login: the dbt docs as one static page with
    the marts, the exposures and the warehouse's catalog, a copy of the newest Data Docs."""
    reports = tmp_path / "reports"
    (reports / "2026-06-29" / "data_docs").mkdir(parents=True)
    (reports / "2026-06-29" / "data_docs" / "index.html").write_text("<p>checks of the 29th</p>")
    (reports / "2026-06-30" / "data_docs").mkdir(parents=True)
    (reports / "2026-06-30" / "data_docs" / "index.html").write_text("<p>checks of the 30th</p>")
    settings = dataclasses.replace(test_warehouse.settings, reports_dir=reports)
    parts = address.dsn_parts(demo_marts.dsn)
    checker = address.build_dsn(address.DsnParts(parts.host, parts.port,
                                                 address.login_role("checker"), "", parts.dbname))
    if not settings.uses_embedded_warehouse:
        checker = demo_marts.dsn  # the external server's logins have no password here
    out = docs.docs_dir(reports)
    index = docs.build_docs(settings, checker, out)
    assert index == out / "index.html"
    page = index.read_text()
    assert 'href="dbt/index.html"' in page and 'href="data_docs/index.html"' in page
    assert DEMO_DATE.isoformat() in page
    assert (out / "data_docs" / "index.html").read_text() == "<p>checks of the 30th</p>"
    site = (out / "dbt" / "index.html").read_text()
    for name in ("model.trebol.customer_segments", "exposure.trebol.customer_segments_dashboard",
                 "seed.trebol.lifecycle_stages", "Marketing analytics"):
        assert name in site, name
    # the run summary links the site
    assert summary.docs_site(reports / "2026-06-30") == str(index)
    assert "docs site   " + str(index) in summary.render(
        {"as_of_date": "2026-06-30", "rows_per_layer": {}, "identity": {
            "customers": 1, "source_records": 1, "shared_identifiers": 0},
         "customers_per_segment": {}, "checks": {"passed": 0, "failed": 0, "errors": [],
                                                 "warnings": []},
         "activation": "pushed", "syncs": [], "marts_checksum": "x",
         "reports": {"folder": "f", "data_docs": "d", "docs": str(index)}})
