"""Erasure requests on the demo data: a customer with records in several sources, synced to a
fake Mailchimp, the webhook receiver and a file drop, is erased by email; afterwards no table
of the warehouse holds any of their identifiers or their customer key, the destinations hold
nothing of theirs, the audit records the request without personal data, loading the same
exports again suppresses their rows (the load audit balances), and the next dbt build keeps them
gone. Then a second customer is erased by the DAG ``trebol_erasure`` with real Airflow.

Everything runs on a copy of the session's demo marts (``demo_marts``), as the roles the
pipeline uses: the loader loads, the activation syncs, the eraser erases.
"""

from __future__ import annotations

import csv
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from trebol import cli
from trebol.activation import staging, sync
from trebol.activation.config import ActivationConfig, load_activation
from trebol.activation.endpoints import build_destination
from trebol.airflow.local_runner import run_dag
from trebol.demo.webhook_receiver import WebhookReceiver
from trebol.erasure import purge, requests
from trebol.erasure.identifiers import (
    DEFAULT_PHONE_RULE,
    IdentifierRefused,
    normalise,
    phone_rule,
    placeholders,
)
from trebol.erasure.subject import Subject
from trebol.erasure.suppression import Suppression
from trebol.extract import load
from trebol.extract.sources import Column, Source, load_sources
from trebol.interval import Interval
from trebol.settings import load_settings
from trebol.warehouse import ddl, embedded
from trebol.warehouse.address import DsnParts, build_dsn, dsn_parts, login_role

from ..fakes.mailchimp import FakeMailchimp
from ..helpers import (
    DEMO_CONFIG_DIR,
    DEMO_DATE,
    DemoMarts,
    SessionWarehouse,
    copy_database,
    drop_database,
    fresh_database,
    load_sources_until,
    local_midnight,
    run_dbt,
)

pytestmark = [pytest.mark.integration]

SALT = "test-erasure-salt-0123456789"
API_KEY = "0123456789abcdef0123456789abcdef-us21"
LIST = "erasure1"
WEBHOOK_SECRET = "whsec_erasure_test"
AUDIENCES = ("aud_winback_high_value", "aud_upsell_high_potential", "aud_onboarding_new",
             "aud_points_expiring", "aud_below_zero")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def role_dsn(dsn: str, role: str) -> str:
    """The login role of ``role`` on ``dsn``'s database (trust on the embedded socket)."""
    parts = dsn_parts(dsn)
    return build_dsn(DsnParts(parts.host, parts.port, login_role(role), "", parts.dbname))


@dataclass
class Person:
    """A customer to erase and every identifier the warehouse holds of them (read before)."""

    customer_key: str
    email: str
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # E.164 (staging) and as the sources typed them
    record_ids: set[str] = field(default_factory=set)  # loyalty:..., ecom:..., crm:...
    source_ids: set[str] = field(default_factory=set)  # the records' own ids

    def pattern(self) -> tuple[str, str]:
        """(case-insensitive pattern of the emails, pattern of the other identifiers), each a
        whole token; phones also as national digits with any separators."""
        def tokens(values: set[str]) -> str:
            return "|".join(re.escape(value) for value in sorted(values))
        digits = set()
        for phone in self.phones:
            number = re.sub(r"[^0-9]", "", phone)
            national = number[2:] if number.startswith("34") and len(number) == 11 else number
            digits.add("[^0-9]{0,3}".join(national))
        others = tokens({self.customer_key, *self.record_ids, *self.source_ids})
        return (rf"(^|[^a-z0-9._+-])({tokens(self.emails)})($|[^a-z0-9.-])",
                rf"(^|[^A-Za-z0-9])({others})($|[^A-Za-z0-9])|(^|[^0-9])({'|'.join(sorted(digits))})($|[^0-9])")


def traces(conn: psycopg.Connection, person: Person) -> dict[str, int]:
    """Rows, per table of every schema of the database, whose text holds one of the person's
    identifiers."""
    emails, others = person.pattern()
    tables = conn.execute("""select n.nspname, c.relname from pg_class as c
        inner join pg_namespace as n on n.oid = c.relnamespace
        where c.relkind = 'r' and n.nspname <> all(%s) and n.nspname not like 'pg_temp%%'
        order by 1, 2""", (list(SYSTEM_SCHEMAS),)).fetchall()
    found = {}
    for schema, table in tables:
        count = conn.execute(sql.SQL("select count(*) from {} as t where t::text ~* %s "
                                     "or t::text ~ %s").format(sql.Identifier(schema, table)),
                             (emails, others)).fetchone()[0]
        if count:
            found[f"{schema}.{table}"] = count
    return found


def choose_person(conn: psycopg.Connection, audiences: tuple[str, ...] = AUDIENCES,
                  other_than: str = "") -> tuple[Person, str]:
    """A consenting customer with records in two sources or more (a loyalty card among them),
    in an audience, whose every email and phone is theirs alone; and that audience."""
    for audience in audiences:
        row = conn.execute(sql.SQL("""
            with own as (
                select keys.customer_key from marts.customer_source_keys as keys
                group by keys.customer_key having count(distinct keys.source) >= 2
                    and bool_or(keys.source = 'loyalty')
            ),
            shared as (
                select distinct keys.customer_key
                from intermediate.int_identity__identifiers as mine
                inner join marts.customer_source_keys as keys
                    on mine.record_id = keys.source || ':' || keys.source_id
                inner join intermediate.int_identity__identifiers as theirs
                    on theirs.identifier_type = mine.identifier_type
                    and theirs.identifier_value = mine.identifier_value
                inner join marts.customer_source_keys as other
                    on theirs.record_id = other.source || ':' || other.source_id
                where mine.identifier_type in ('email', 'phone')
                    and other.customer_key <> keys.customer_key
            )
            select customers.customer_key, customers.email
            from marts.dim_customers as customers
            inner join own on own.customer_key = customers.customer_key
            inner join {audience} as audience on audience.customer_key = customers.customer_key
            where customers.has_marketing_consent and customers.email is not null
                and customers.phone is not null and customers.has_store_purchases
                and customers.customer_key not in (select customer_key from shared)
                and customers.customer_key <> {other_than}
            order by (select count(*) from raw._quarantine as q
                      where q.payload ilike '%%' || customers.email || '%%') desc,
                     customers.customer_key
            limit 1""").format(audience=sql.Identifier("audiences", audience),
                               other_than=sql.Literal(other_than))).fetchone()
        if row:
            return describe(conn, row[0], row[1]), audience
    raise AssertionError("no customer fits in any audience of the demo")


def describe(conn: psycopg.Connection, key: str, email: str) -> Person:
    """Every identifier of a customer the warehouse holds (marts, identity and raw)."""
    person = Person(key, email)
    for source, source_id in conn.execute("select source, source_id from marts.customer_source_keys "
                                          "where customer_key = %s", (key,)):
        person.record_ids.add(f"{source}:{source_id}")
        person.source_ids.add(source_id)
    for kind, value in conn.execute("""select identifier_type, identifier_value
            from intermediate.int_identity__identifiers where record_id = any(%s)
            and identifier_type in ('email', 'phone')""", (sorted(person.record_ids),)):
        (person.emails if kind == "email" else person.phones).add(value)
    cards = [i.split(":", 1)[1] for i in person.record_ids if i.startswith("loyalty:")]
    contacts = [i.split(":", 1)[1] for i in person.record_ids if i.startswith("crm:")]
    for phone, raw_email in conn.execute("""
            select phone, email from raw.loyalty_members where card_number = any(%s)
            union select phone, email from raw.crm_contacts where contact_id = any(%s)""",
                                         (cards, contacts)):
        person.phones |= {phone.strip()} if phone and phone.strip() else set()
        person.emails |= {raw_email.strip().lower()} if raw_email and raw_email.strip() else set()
    return person


def erasure_config(config_dir: Path, audience: str) -> None:
    """The demo's sources and quality rules, and three destinations for ``audience``."""
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in ("sources.yml", "quality.yml"):
        (config_dir / name).write_text((DEMO_CONFIG_DIR / name).read_text())
    (config_dir / "destinations.yml").write_text(f"""
destinations:
  news: {{type: mailchimp, connection: test_erasure_mailchimp, max_attempts: 2,
          backoff_seconds: 0.001, max_backoff_seconds: 0.01}}
  hook: {{type: webhook, connection: test_erasure_webhook, max_attempts: 2,
          backoff_seconds: 0.001, max_backoff_seconds: 0.01}}
  drop: {{type: file}}
syncs:
  - {{audience: {audience}, destination: news, holdout_share: 0,
      fields: {{email_address: email, FNAME: first_name}}}}
  - {{audience: {audience}, destination: hook, holdout_share: 0,
      fields: {{email: email, first_name: first_name}}}}
  - {{audience: {audience}, destination: drop, holdout_share: 0,
      fields: {{email: email, first_name: first_name}}}}
""")


@dataclass
class Erased:
    """The module's scene: the database, the fakes, the person, what the erasure returned."""

    dsn: str
    person: Person
    audience: str
    config: ActivationConfig
    mailchimp: FakeMailchimp
    receiver: WebhookReceiver
    drop_dir: Path
    hooks_dir: Path
    before: dict[str, int]
    row: dict[str, Any]
    pos_tickets_before: int
    batches: dict[str, list[str]]
    seconds: float
    tmp: Path


@pytest.fixture(scope="module")
def erased(test_warehouse: SessionWarehouse, demo_marts: DemoMarts,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Erased]:
    tmp = tmp_path_factory.mktemp("erasure")
    scene_started = time.monotonic()
    dsn = copy_database(test_warehouse.dsn, demo_marts.dsn, "trebol_test_erasure")
    with pytest.MonkeyPatch.context() as patch, FakeMailchimp(api_key=API_KEY) as mailchimp, \
            WebhookReceiver([WEBHOOK_SECRET], out_dir=tmp / "hooks") as receiver:
        with psycopg.connect(dsn, autocommit=True) as admin:
            ddl.bootstrap(admin)
            # dbt built the demo marts as the admin: hand them to the transformer, as migrations
            # 10 to 12 do on a warehouse built before the roles (12: the seeds' schemas)
            for migration in ddl.MIGRATIONS:
                if migration.version in (10, 11, 12):
                    for statement in migration.statements:
                        admin.execute(statement)
            person, audience = choose_person(admin)
            pos_tickets = admin.execute("select count(*) from raw.pos_tickets where "
                                        "loyalty_card_number = any(%s)",
                                        (sorted(person.source_ids),)).fetchone()[0]
            batches = {source.name: [row[0] for row in admin.execute(sql.SQL(
                "select distinct _batch_id from {} where {}").format(
                ddl.raw_table(source), sql.SQL(" or ").join(
                    sql.SQL("{} = any(%s)").format(sql.Identifier(column.name))
                    for column in source.identifier_columns)),
                [sorted(person.source_ids)] * len(source.identifier_columns))]
                for source in load_sources().values() if source.identifier_columns}
        erasure_config(tmp / "config", audience)
        patch.setenv("TREBOL_CONFIG_DIR", str(tmp / "config"))
        patch.setenv("TREBOL_FILE_DROP_DIR", str(tmp / "outbox"))
        patch.setenv("TREBOL_ERASURE_SALT", SALT)
        patch.setenv("AIRFLOW_CONN_TEST_ERASURE_MAILCHIMP", json.dumps(
            {"conn_type": "generic", "host": mailchimp.base_url, "password": API_KEY,
             "extra": {"list_id": LIST}}))
        patch.setenv("AIRFLOW_CONN_TEST_ERASURE_WEBHOOK", json.dumps(
            {"conn_type": "http", "host": receiver.url, "password": WEBHOOK_SECRET}))
        mailchimp.add_list(LIST, merge_fields={"FNAME": "text"})
        settings, config = load_settings(), load_activation()
        with psycopg.connect(role_dsn(dsn, "activation"), autocommit=True) as conn:
            staging.stage_audiences(conn, config, DEMO_DATE)
            for spec in config.syncs:
                destination = build_destination(config.destinations[spec.destination],
                                                settings.file_drop_dir)
                report = sync.run_sync(conn, config, spec.name, DEMO_DATE, "nightly", destination)
                assert report.status == "succeeded" and report.added > 0, report
        with psycopg.connect(dsn, autocommit=True) as admin:
            before = traces(admin, person)
        # the erasure, as `trebol erase --email` runs it
        request = requests.ErasureRequest(str(uuid.uuid4()), "cli", "email",
                                          f"  {person.email.upper()} ", "DPO ticket 4711")
        started = time.monotonic()
        row = requests.run_request(
            lambda: psycopg.connect(role_dsn(dsn, "eraser"), autocommit=True), request, settings,
            load_sources().values(), config,
            lambda spec: build_destination(spec, settings.file_drop_dir))
        seconds = time.monotonic() - started
        print(f"\nerasure scene (copy, stage and sync, erase): {time.monotonic() - scene_started:.1f} s")
        yield Erased(dsn, person, audience, config, mailchimp, receiver, tmp / "outbox" / "drop",
                     tmp / "hooks", before, row, pos_tickets, batches, seconds, tmp)
    drop_database(test_warehouse.dsn, dsn)


def test_the_person_is_everywhere_before(erased: Erased) -> None:
    """The scan finds them first: in raw, the identity, the marts and the activation."""
    for table in ("raw.loyalty_members", "raw.crm_contacts", "marts.dim_customers",
                  "marts.customer_source_keys", "marts.fct_transactions",
                  "intermediate.int_identity__identifiers", "activation.sync_state",
                  "activation.sync_records", "activation.audience_members",
                  f"audiences.{erased.audience}"):
        assert erased.before.get(table), (table, erased.before)
    assert len(erased.person.record_ids) >= 2


def test_no_trace_is_left_in_any_table_of_the_warehouse(erased: Erased,
                                                         test_warehouse: SessionWarehouse) -> None:
    assert erased.row["status"] == "completed", erased.row
    with psycopg.connect(erased.dsn, autocommit=True) as conn:
        assert traces(conn, erased.person) == {}
        # the history tables lost their rows too, and the key register its key
        for table in ("marts.segment_history", "marts.customer_keys", "marts.customer_clv"):
            assert not conn.execute(sql.SQL("select count(*) from {} where customer_key = %s").format(
                sql.SQL(table)), (erased.person.customer_key,)).fetchone()[0], table
    # the source system is not ours: its tickets are still there, for its owner to erase
    with psycopg.connect(test_warehouse.pos_dsn, autocommit=True) as pos:
        cards = [i.split(":", 1)[1] for i in erased.person.record_ids if i.startswith("loyalty:")]
        assert pos.execute("select count(*) from pos.tickets where loyalty_card_number = any(%s)",
                           (cards,)).fetchone()[0] == erased.pos_tickets_before


def test_the_destinations_hold_nothing_of_them(erased: Erased) -> None:
    person, destinations = erased.person, erased.row["destinations"]
    assert {result["removed"] for result in destinations.values()} == {1}, destinations
    assert {result["failed"] for result in destinations.values()} == {0}
    # Mailchimp: deleted for good, and a later import of the address is refused
    assert erased.mailchimp.member(LIST, person.email) is None
    assert erased.mailchimp.was_erased(LIST, person.email)
    assert erased.mailchimp.count(
        "POST /lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent", status=204) == 1
    # the webhook receiver: a delete event without fields, and nothing of theirs kept
    sync_name = f"{erased.audience}__hook"
    assert person.customer_key not in erased.receiver.state(sync_name)
    assert erased.receiver.state(sync_name)  # the others stay
    logged = "".join(path.read_text() for path in erased.hooks_dir.glob("*.jsonl"))
    assert logged and person.customer_key not in logged and person.email not in logged.lower()
    assert not any(person.customer_key in json.dumps(batch) for batch in erased.receiver.batches())
    # the file drop: a new delivery whose snapshot lacks them, its change names only their key
    deliveries = sorted((erased.drop_dir / f"{erased.audience}__drop").iterdir())
    assert [path.name for path in deliveries] == [DEMO_DATE.isoformat(), f"{DEMO_DATE.isoformat()}.2"]
    snapshot = (deliveries[-1] / "snapshot.csv").read_text()
    assert person.customer_key not in snapshot and person.email not in snapshot.lower()
    with (deliveries[-1] / "changes.csv").open(newline="") as handle:
        assert list(csv.DictReader(handle)) == [{"operation": "remove",
                                                 "customer_key": person.customer_key,
                                                 "email": "", "first_name": ""}]


def test_the_audit_records_the_request_without_personal_data(erased: Erased) -> None:
    row = erased.row
    assert (row["identifier_type"], row["requested_by"], row["run_id"]) == (
        "email", "DPO ticket 4711", "cli")
    assert row["customers"] == 1 and row["source_records"] == len(erased.person.record_ids)
    assert row["identifiers_suppressed"] >= len(erased.person.record_ids) + 2
    assert row["shared_identifiers_kept"] == 0
    for table in ("raw.loyalty_members", "marts.dim_customers", "marts.fct_transactions",
                  "activation.sync_records"):
        assert row["tables"].get(table), (table, row["tables"])
    with psycopg.connect(erased.dsn, autocommit=True) as conn:
        hashes = conn.execute("select identifier_hash, identifier_kind from raw._suppression_list"
                              ).fetchall()
        assert len(hashes) == row["identifiers_suppressed"]
        assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value, _ in hashes)
        # the BI role reads neither the audit nor the list
        conn.execute(f"set role {ddl.BI_ROLE}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from audit.erasure_requests")
    print(f"\nerasure request: {erased.seconds:.2f} s; tables: {row['tables']}")


def test_loading_their_exports_again_suppresses_them_and_the_audit_balances(
        erased: Erased, test_warehouse: SessionWarehouse) -> None:
    """The batches that held the person are loaded again (as if re-delivered, and the POS read
    from the start): their rows are suppressed, not loaded, not quarantined."""
    with psycopg.connect(erased.dsn, autocommit=True) as admin:
        for source, batch_ids in erased.batches.items():
            admin.execute("delete from raw._load_audit where source = %s and batch_id = any(%s)",
                          (source, batch_ids))
        # the newest CRM snapshot delivered again (older ones are never applied over it)
        admin.execute("""delete from raw._load_audit where source = 'crm_contacts'
            and file_day = (select max(file_day) from raw._load_audit where source = 'crm_contacts')""")
        admin.execute("delete from raw._load_audit where source in ('pos_tickets', 'pos_ticket_lines')")
    with psycopg.connect(role_dsn(erased.dsn, "loader"), autocommit=True) as loader:
        load_sources_until(loader, test_warehouse.pos_dsn, test_warehouse.settings.sources_dir,
                           DEMO_DATE)
    with psycopg.connect(erased.dsn, autocommit=True) as conn:
        suppressed = dict(conn.execute("select source, sum(rows_suppressed) from raw._load_audit "
                                       "group by source having sum(rows_suppressed) > 0").fetchall())
        assert traces(conn, erased.person) == {}
        unbalanced = conn.execute("""select count(*) from raw._load_audit
            where rows_read <> rows_loaded + rows_quarantined + rows_suppressed""").fetchone()[0]
        quarantine = conn.execute("""select count(*) from (select source, batch_id,
                sum(rows_quarantined) as audited from raw._load_audit group by 1, 2) as audit
            full join (select source, batch_id, count(*) as kept from raw._quarantine
                       group by 1, 2) as kept using (source, batch_id)
            where coalesce(audited, 0) <> coalesce(kept, 0)""").fetchone()[0]
    held = {name for name, batch_ids in erased.batches.items() if batch_ids}
    assert {"loyalty_members", "pos_tickets"} <= held <= set(suppressed), (held, suppressed)
    assert suppressed["pos_tickets"] >= erased.pos_tickets_before > 0
    assert (unbalanced, quarantine) == (0, 0)


def test_the_next_dbt_build_keeps_them_gone(erased: Erased) -> None:
    """dbt builds again, as the transformer, what keeps history across runs (the incremental
    fct_transactions and key register) with the identity and staging under them: raw holds
    nothing of the person any more, so nothing brings them back."""
    run_dbt(role_dsn(erased.dsn, "transformer"), local_midnight(DEMO_DATE), "run", "--select",
            "+fct_transactions", "+customer_keys", "+dim_customers", work_dir=erased.tmp / "dbt")
    with psycopg.connect(erased.dsn, autocommit=True) as conn:
        assert traces(conn, erased.person) == {}
        assert conn.execute("select count(*) from marts.dim_customers").fetchone()[0] > 100


def test_a_shared_email_a_placeholder_and_a_bad_phone_are_refused(erased: Erased) -> None:
    settings = load_settings()
    with psycopg.connect(erased.dsn, autocommit=True) as admin:
        shared = admin.execute("select identifier_value from intermediate.int_identity__identifiers "
                               "as i inner join marts.customer_source_keys as k "
                               "on i.record_id = k.source || ':' || k.source_id "
                               "where identifier_type = 'email' group by 1 "
                               "having count(distinct k.customer_key) > 1 limit 1").fetchone()
    connect = lambda: psycopg.connect(role_dsn(erased.dsn, "eraser"), autocommit=True)  # noqa: E731
    cases = [("email", "noemail@noemail.com", "placeholder"), ("phone", "12", "not one staging")]
    if shared:
        cases.append(("email", shared[0], "held by the records of"))
    for kind, value, reason in cases:
        request = requests.ErasureRequest(str(uuid.uuid4()), "cli", kind, value, "test")
        with pytest.raises(IdentifierRefused, match=reason) as refused:
            requests.run_request(connect, request, settings, [], erased.config, lambda spec: None)
        assert value not in str(refused.value)
        with connect() as conn:
            assert requests.audit_row(conn, request.request_id)["status"] == "refused"
    assert shared, "the demo has household emails (README): one is refused"


def test_the_command_line_erases_a_customer_by_key(erased: Erased, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`trebol erase --customer-key`, on the warehouse the settings name, as the eraser's login."""
    with psycopg.connect(erased.dsn, autocommit=True) as admin:
        third, _ = choose_person(admin, AUDIENCES, erased.person.customer_key)
    monkeypatch.setenv("TREBOL_WAREHOUSE_DSN", erased.dsn)
    monkeypatch.setenv("TREBOL_WAREHOUSE_ERASER_DSN", role_dsn(erased.dsn, "eraser"))
    assert cli.main(["erase", "--customer-key", third.customer_key, "--requested-by", "cli test"]) == 0
    printed = capsys.readouterr().out
    assert "(customer_key, asked by cli test): completed" in printed
    assert "found       1 customer key(s)" in printed and "raw.loyalty_members" in printed
    assert third.customer_key not in printed and third.email not in printed
    with psycopg.connect(erased.dsn, autocommit=True) as conn:
        assert traces(conn, third) == {}


def test_the_eraser_deletes_but_changes_nothing_else(erased: Erased) -> None:
    """Least privilege: the eraser's login acts as trebol_eraser, which runs no migration, makes
    no role, alters no table of Trébol's own and takes no one off the suppression list."""
    with psycopg.connect(role_dsn(erased.dsn, "eraser"), autocommit=True) as conn:
        assert conn.execute("select current_user").fetchone()[0] == ddl.ERASER
        for statement in ("create role trebol_test_intruder",
                          "alter table raw._load_audit add column intruder integer",
                          "delete from raw._suppression_list",
                          "drop table audit.erasure_requests",
                          "select * from trebol_meta.schema_migrations"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_table_the_eraser_may_not_change_stops_the_purge_naming_it(erased: Erased) -> None:
    """A table made without the privileges erasure needs (here: by the admin, in marts) that
    holds the person's rows: the purge deletes nothing and names it; the request fails."""
    key = "C00000000000abcde"
    with psycopg.connect(erased.dsn, autocommit=True) as admin:
        admin.execute("create table marts.t_admin_owned (customer_key text, note text)")
        admin.execute("insert into marts.t_admin_owned values (%s, 'kept')", (key,))
        admin.execute("insert into activation.holdouts values ('aud_x', %s, 0.1, '2026-06-30')", (key,))
    request = requests.ErasureRequest(str(uuid.uuid4()), "cli", "customer_key", key, "test")
    try:
        with pytest.raises(purge.PurgeRefused, match=r"^marts.t_admin_owned holds rows of the person"):
            requests.run_request(lambda: psycopg.connect(role_dsn(erased.dsn, "eraser"), autocommit=True),
                                 request, load_settings(), load_sources().values(), erased.config,
                                 lambda spec: build_destination(spec, erased.tmp / "outbox"))
        with psycopg.connect(erased.dsn, autocommit=True) as admin:
            assert admin.execute("select count(*) from activation.holdouts where customer_key = %s",
                                 (key,)).fetchone()[0] == 1  # one transaction: nothing deleted
            assert requests.audit_row(admin, request.request_id)["status"] == "failed"
    finally:
        with psycopg.connect(erased.dsn, autocommit=True) as admin:
            admin.execute("drop table marts.t_admin_owned")
            admin.execute("delete from activation.holdouts where customer_key = %s", (key,))


def test_identifiers_are_normalised_as_staging_normalises_them(erased: Erased) -> None:
    """The suppression list hashes what staging would store: on the demo's raw members and
    contacts (phones typed every which way), Python's normalisation gives staging's value."""
    settings = load_settings()
    rule, placeholder = phone_rule(settings.dbt_project_dir), placeholders(settings.dbt_project_dir)
    with psycopg.connect(erased.dsn, autocommit=True) as conn:
        rows = conn.execute("""
            select m.email, m.phone, s.email, s.phone from raw.loyalty_members as m
            inner join staging.stg_loyalty__members as s on s.loyalty_card_number = m.card_number
                and s.source_updated_at = m.updated_at
            union all
            select c.email, c.phone, s.email, s.phone from raw.crm_contacts as c
            inner join staging.stg_crm__contacts as s
                on s.contact_id = c.contact_id and s.valid_from = c._valid_from""").fetchall()
    for raw_email, raw_phone, email, phone in rows:
        for kind, typed, staged in (("email", raw_email, email), ("phone", raw_phone, phone)):
            ours = normalise(kind, typed, rule) if typed is not None else None
            assert (None if ours in placeholder[kind] else ours) == staged, (typed, staged)
    assert len(rows) > 500
    assert any(typed and not typed.startswith("+") for _, typed, _, _ in rows)


def test_the_erasure_dag_erases_a_customer_with_real_airflow(erased: Erased,
                                                           test_warehouse: SessionWarehouse) -> None:
    """The DAG trebol_erasure, run by Airflow (dag.test in a child process, as `trebol run`
    does) with params, erases a second customer by loyalty card, as the eraser."""
    with psycopg.connect(erased.dsn, autocommit=True) as admin:
        second, _ = choose_person(admin, (erased.audience,), erased.person.customer_key)
        card = sorted(i.split(":", 1)[1] for i in second.record_ids if i.startswith("loyalty:"))[0]
        assert traces(admin, second)
    settings = load_settings()
    role_dsns = embedded.resolve_role_dsns(settings, erased.dsn)
    assert role_dsns["eraser"] == role_dsn(erased.dsn, "eraser")
    started = time.monotonic()
    run_dag(settings, erased.dsn, test_warehouse.pos_dsn, role_dsns, "trebol_erasure",
            datetime.now(UTC).replace(microsecond=0), erased.tmp / "erasure_dag.log", print,
            conf={"identifier_type": "loyalty_card", "identifier": card,
                  "requested_by": "airflow test"})
    print(f"\ntrebol_erasure DAG run: {time.monotonic() - started:.1f} s")
    with psycopg.connect(erased.dsn, autocommit=True) as conn:
        row = conn.execute("""select status, identifier_type, run_id, customers from
            audit.erasure_requests where requested_by = 'airflow test'""").fetchone()
        assert traces(conn, second) == {}
    assert row[:2] == ("completed", "loyalty_card") and row[2].startswith("manual__") and row[3] == 1
    assert card not in (erased.tmp / "erasure_dag.log").read_text()
    assert second.customer_key not in json.dumps(erased.receiver.batches())


def test_every_version_of_their_records_leaves_raw(test_warehouse: SessionWarehouse,
                                                  tmp_path: Path) -> None:
    """Raw keeps each version of a record: the purge deletes every version of a record one of
    whose versions holds the person's identifier (a ticket whose card was added by a later
    correction too), and leaves other people's records whole."""
    source = Source(
        name="t_erase_versions", kind="files", path="t_erase_versions/*.csv",
        target="t_erase_versions", primary_key=("ticket_id",), version_column="updated_at",
        columns=(Column("ticket_id", "text", "ticket_id", required=True),
                 Column("card", "text", "card", identifies="loyalty_card"),
                 Column("updated_at", "timestamptz", "updated_at", required=True)))
    folder = tmp_path / source.name
    folder.mkdir()
    (folder / "2026-06-01.csv").write_text(
        "ticket_id,card,updated_at\nt1,,2026-06-01T10:00:00+02:00\n"
        "t2,9900000002,2026-06-01T10:00:00+02:00\n", encoding="utf-8")
    (folder / "2026-06-02.csv").write_text(
        "ticket_id,card,updated_at\nt1,9900000001,2026-06-02T10:00:00+02:00\n"
        "t2,9900000002,2026-06-02T10:00:00+02:00\n", encoding="utf-8")
    end = local_midnight(date(2026, 6, 3))
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_erase_versions")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ddl.bootstrap(conn)
            load.extract_and_load(conn, source, tmp_path, Interval(end - timedelta(days=1), end),
                                  0, "Europe/Madrid", suppression=Suppression(None))
            assert conn.execute("select count(*) from raw.t_erase_versions").fetchone()[0] == 4
            subject = Subject(identifiers=frozenset({("loyalty_card", "9900000001")}))
            deleted = purge.purge_raw_sources(conn, subject, [source], DEFAULT_PHONE_RULE)
            left = conn.execute("select ticket_id, card from raw.t_erase_versions "
                                "order by updated_at").fetchall()
    finally:
        drop_database(test_warehouse.dsn, dsn)
    assert deleted == {"raw.t_erase_versions": 2}
    assert left == [("t2", "9900000002"), ("t2", "9900000002")]
