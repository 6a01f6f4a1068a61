"""Identity resolution with real dbt on a real PostgreSQL: stable customer keys across runs and
merges, full rebuilds that reproduce them, an incremental fct_transactions equal to a rebuild.

Runs on a database and a simulation of its own (not the session's demo), loaded in two steps:
the first 30 days, then the next 30, in which customers gain records and a new CRM contact
bridges two customers of the first month (their clusters merge).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from trebol.demo import SimulationSpec, simulate
from trebol.extract import load
from trebol.warehouse import ddl

from ..helpers import (
    DEMO_DATE,
    SessionWarehouse,
    drop_database,
    fresh_database,
    load_sources_until,
    local_midnight,
    run_dbt,
)

pytestmark = pytest.mark.integration
TZ = "Europe/Madrid"
MIDDLE_DATE = DEMO_DATE - timedelta(days=30)
Crosswalk = dict[tuple[str, str], str]
# what this module reads, and what it is built from (not the value marts, audiences, quality)
IDENTITY_LINEAGE = ("--select", "+customer_source_keys +customer_keys +fct_transactions",
                    "--indirect-selection", "cautious")


@dataclass(frozen=True)
class TwoSteps:
    """The crosswalk after 30 days, after 60 days, after a full rebuild, and what else was read."""

    dsn: str
    bridged: tuple[str, str]
    after_30: Crosswalk
    after_60: Crosswalk
    first_seen: dict[tuple[str, str], str]
    register: dict[str, tuple[str, str, str | None]]
    fct_incremental: str
    reclustered_touched_only: bool
    after_upgrade: Crosswalk
    unclustered_after_upgrade: int
    reclustered_touched_only_after_upgrade: bool
    after_rebuild: Crosswalk
    fct_rebuilt: str
    register_after_rebuild: int
    identifiers_incremental: str
    identifiers_derived_by_increment: int
    identifiers_under_other_rules: str
    identifiers_rules_restored: str
    identifiers_rederived_on_restore: int
    identifiers_after_upgrade: str
    identifiers_rederived_on_upgrade: int
    identifiers_rebuilt: str
    shared_incremental: str
    values_judged_by_increment: int
    identifier_values: int
    shared_after_upgrade: str
    values_judged_on_upgrade: int
    shared_rebuilt: str
    rederived_on_new_limit: int
    shared_on_new_limit: str
    shared_rebuilt_on_new_limit: str
    last_active_on: dict[str, date]
    keyed_as_of_upgrade: tuple[int, int]
    fct_rewritten: str
    fct_rewritten_rows: int
    fct_changes_only: tuple[bool, bool]
    identifier_unique_indexes: tuple[list[str], list[str]]


def _reclustered_touched_only(work: Path) -> bool:
    """Whether the last build's int_identity__clusters took the touched clusters' path (its
    compiled select), rather than clustering every record again."""
    compiled = work / "target" / "compiled" / "trebol" / "models" / "intermediate" / "identity"
    return "touched_clusters" in (compiled / "int_identity__clusters.sql").read_text()


def _wrote_changes_only(work: Path) -> bool:
    """Whether the last build's fct_transactions read the changed lines only (its compiled
    select), rather than every line."""
    compiled = work / "target" / "compiled" / "trebol" / "models" / "marts"
    return "ticket_updated_at >=" in (compiled / "fct_transactions.sql").read_text()


def _rows_inserted(work: Path, model: str) -> int:
    """The rows the last dbt command inserted into ``model`` (its run_results)."""
    results = json.loads((work / "target" / "run_results.json").read_text())["results"]
    [result] = [r for r in results if r["unique_id"] == f"model.trebol.{model}"]
    return result["adapter_response"]["rows_affected"]


def _crosswalk(conn: psycopg.Connection) -> Crosswalk:
    return {(source, source_id): key for source, source_id, key in conn.execute(
        "select source, source_id, customer_key from marts.customer_source_keys")}


def _checksum(conn: psycopg.Connection, relation: str, order_by: str = "t::text") -> str:
    """``<rows>:<md5 of every row>`` of ``relation`` (its rows as ``t``, in ``order_by``)."""
    return conn.execute(f"select count(*) || ':' || md5(string_agg(t::text, '|' order by "
                        f"{order_by})) from {relation} t").fetchone()[0]


def _fct_checksum(conn: psycopg.Connection) -> str:
    return _checksum(conn, "marts.fct_transactions", "t.transaction_line_id")


def _identifiers_checksum(conn: psycopg.Connection) -> str:
    """Of every column but derived_in_transaction (the transaction that derived the row)."""
    return _checksum(conn, "(select record_id, identifier_type, identifier_value, record_digest "
                           "from intermediate.int_identity__identifiers)")


def _shared_checksum(conn: psycopg.Connection) -> str:
    """Of every column but identifiers_judged_through (a transaction id) and
    judged_under_rules."""
    return _checksum(conn, "(select identifier_type, identifier_value, record_count, "
                           "conflicting_value_count, shared_reason "
                           "from intermediate.int_identity__shared_identifiers)")


def _identifier_unique_indexes(conn: psycopg.Connection) -> list[str]:
    """The unique indexes of int_identity__identifiers, as their definitions' column lists."""
    return [definition.split(" USING btree ")[1] for (definition,) in conn.execute(
        "select pg_get_indexdef(indexrelid) from pg_index "
        "where indrelid = 'intermediate.int_identity__identifiers'::regclass and indisunique")]


def _identifier_values(conn: psycopg.Connection) -> int:
    return conn.execute("select count(*) from (select distinct identifier_type, identifier_value "
                        "from intermediate.int_identity__identifiers) as v").fetchone()[0]


BRIDGE_CONTACT = "C9999999"


def _bridge_two_customers(conn: psycopg.Connection, sources_dir: Path) -> tuple[str, str]:
    """Add, to every CRM snapshot from MIDDLE_DATE on, a contact holding the email of a web-only
    customer (per the ground truth: no card, no CRM contact, an email of their own) and the phone
    of another customer: the two keys it will merge."""
    truth = sources_dir / "ground_truth"
    with (truth / "people.csv").open(newline="") as handle:
        web_only = {row["person_id"] for row in csv.DictReader(handle)
                    if row["is_loyalty_member"] == row["has_crm_contact"] == "false"
                    and not row["shares_email_with"]}
    with (truth / "identities.csv").open(newline="") as handle:
        web_only_accounts = sorted(row["source_id"] for row in csv.DictReader(handle)
                                   if row["source"] == "ecom" and row["person_id"] in web_only)
    email_key, email = conn.execute("""
        select k.customer_key, r.email from marts.customer_source_keys k
        inner join intermediate.int_identity__records r on (r.source, r.source_id) = (k.source, k.source_id)
        where k.source = 'ecom' and k.source_id = any(%s) and r.email is not null
        order by k.source_id limit 1""", (web_only_accounts,)).fetchone()
    phone_key, phone = conn.execute("""
        select k.customer_key, r.phone from marts.customer_source_keys k
        inner join intermediate.int_identity__records r on (r.source, r.source_id) = (k.source, k.source_id)
        where r.phone is not null and k.customer_key <> %s
        order by k.customer_key, r.record_id limit 1""", (email_key,)).fetchone()
    for path in sorted((sources_dir / "crm" / "contacts").glob("*.csv")):
        day = load.file_day(path)
        if day is not None and day >= MIDDLE_DATE:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(f"{BRIDGE_CONTACT},Zoe,Puente,{email},{phone},00000,false,,,"
                             f"{MIDDLE_DATE.isoformat()}T12:00:00+02:00\n")
    return email_key, phone_key


@pytest.fixture(scope="module")
def two_steps(test_warehouse: SessionWarehouse, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[TwoSteps]:
    work = tmp_path_factory.mktemp("identity")
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_identity")
    pos_dsn = fresh_database(test_warehouse.dsn, "trebol_test_identity_pos")
    spec = SimulationSpec(customers=600, days=60, end_date=DEMO_DATE, seed=11, timezone=TZ)
    simulate(spec, work / "sources", pos_dsn)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ddl.bootstrap(conn)
            load_sources_until(conn, pos_dsn, work / "sources", MIDDLE_DATE)
            run_dbt(dsn, local_midnight(MIDDLE_DATE), "build", *IDENTITY_LINEAGE, work_dir=work)
            after_30 = _crosswalk(conn)
            bridged = _bridge_two_customers(conn, work / "sources")
            load_sources_until(conn, pos_dsn, work / "sources", DEMO_DATE)
            # the touched clusters' path whatever the share of changed records (30 days of
            # changes are more than the default share): the full rebuild below checks its keys
            run_dbt(dsn, local_midnight(DEMO_DATE), "build", *IDENTITY_LINEAGE,
                    "--vars", "{identity_recluster_all_above_changed_share: 1}", work_dir=work)
            reclustered_touched_only = _reclustered_touched_only(work)
            after_60 = _crosswalk(conn)
            first_seen = {(s, i): str(t) for s, i, t in conn.execute(
                "select source, source_id, first_seen_at from marts.customer_source_keys")}
            register_rows = conn.execute(
                "select customer_key, key_source, key_source_id, merged_into_customer_key, "
                "last_active_on from marts.customer_keys").fetchall()
            register = {key: (source, source_id, merged)
                        for key, source, source_id, merged, _ in register_rows}
            last_active_on = {key: last_active for key, *_, last_active in register_rows}
            fct_incremental = _fct_checksum(conn)
            fct_changes_only_in_increment = _wrote_changes_only(work)
            identifiers_incremental = _identifiers_checksum(conn)
            unique_indexes_after_increment = _identifier_unique_indexes(conn)
            derived_by_increment = _rows_inserted(work, "int_identity__identifiers")
            shared_incremental = _shared_checksum(conn)
            judged_by_increment = _rows_inserted(work, "int_identity__shared_identifiers")
            identifier_values = _identifier_values(conn)
            # the shared values as a release before the incremental model made them: every
            # value judged again, to the same rows
            conn.execute("alter table intermediate.int_identity__shared_identifiers "
                         "drop column identifiers_judged_through")
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select",
                    "int_identity__shared_identifiers", work_dir=work)
            shared_after_upgrade = _shared_checksum(conn)
            judged_on_upgrade = _rows_inserted(work, "int_identity__shared_identifiers")
            # other rules (a var the model reads): every record's identifiers derived again
            # under them; back to the project's rules, again every record's
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "int_identity__identifiers",
                    "--vars", "{identity_min_email_local_part_length: 99}", work_dir=work)
            identifiers_under_other_rules = _identifiers_checksum(conn)
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "int_identity__identifiers",
                    work_dir=work)
            identifiers_rules_restored = _identifiers_checksum(conn)
            rederived_on_restore = _rows_inserted(work, "int_identity__identifiers")
            # the identifiers as a release before the incremental model made them: no digest
            conn.execute("alter table intermediate.int_identity__identifiers drop column record_digest")
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "int_identity__identifiers",
                    work_dir=work)
            identifiers_after_upgrade = _identifiers_checksum(conn)
            rederived_on_upgrade = _rows_inserted(work, "int_identity__identifiers")
            # the clusters as a release before the incremental model made them: without the
            # columns its select compares; the next run adds them, and, every record changed,
            # clusters every record again as a first build does
            conn.execute("alter table intermediate.int_identity__clusters "
                         "drop column first_seen_at, drop column trusted_identifiers_digest, "
                         "drop column keyed_at")
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "int_identity__clusters",
                    "customer_source_keys", work_dir=work)
            after_upgrade = _crosswalk(conn)
            keyed_as_of_upgrade = conn.execute(
                "select count(*) filter (where keyed_at = %s), count(*) "
                "from intermediate.int_identity__clusters", (local_midnight(DEMO_DATE),)).fetchone()
            # more records keyed lately than the var allows (0 here): every line written again
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "fct_transactions",
                    "--vars", "{transactions_rewrite_all_above_rekeyed_records: 0}", work_dir=work)
            fct_rewritten = _fct_checksum(conn)
            fct_rewritten_rows = _rows_inserted(work, "fct_transactions")
            fct_changes_only = (fct_changes_only_in_increment, _wrote_changes_only(work))
            unclustered = conn.execute("select count(*) from intermediate.int_identity__clusters "
                                       "where trusted_identifiers_digest is null").fetchone()[0]
            touched_only_after_upgrade = _reclustered_touched_only(work)
            # a user's new guardrail (the seed's limit for emails, 1): every identifier derived
            # again (their digest holds the seed's rows), so every value judged again, to the
            # rows of a full rebuild under that limit; the build below loads the seed again.
            # First the shared values judged up to the identifiers derived above
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select",
                    "int_identity__shared_identifiers", work_dir=work)
            conn.execute("update internal.identifier_types set max_records = 1 "
                         "where identifier_type = 'email'")
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "int_identity__identifiers",
                    "int_identity__shared_identifiers", work_dir=work)
            rederived_on_new_limit = _rows_inserted(work, "int_identity__identifiers")
            shared_on_new_limit = _shared_checksum(conn)
            run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--full-refresh", "--select",
                    "int_identity__shared_identifiers", work_dir=work)
            shared_rebuilt_on_new_limit = _shared_checksum(conn)
            run_dbt(dsn, local_midnight(DEMO_DATE), "build", "--full-refresh", *IDENTITY_LINEAGE,
                    work_dir=work)
            identifier_unique_indexes = (unique_indexes_after_increment,
                                         _identifier_unique_indexes(conn))
            yield TwoSteps(dsn, bridged, after_30, after_60, first_seen, register, fct_incremental,
                           reclustered_touched_only, after_upgrade, unclustered,
                           touched_only_after_upgrade, _crosswalk(conn), _fct_checksum(conn),
                           conn.execute("select count(*) from marts.customer_keys").fetchone()[0],
                           identifiers_incremental, derived_by_increment,
                           identifiers_under_other_rules, identifiers_rules_restored,
                           rederived_on_restore, identifiers_after_upgrade,
                           rederived_on_upgrade, _identifiers_checksum(conn), shared_incremental,
                           judged_by_increment, identifier_values, shared_after_upgrade,
                           judged_on_upgrade, _shared_checksum(conn), rederived_on_new_limit,
                           shared_on_new_limit, shared_rebuilt_on_new_limit, last_active_on,
                           keyed_as_of_upgrade, fct_rewritten, fct_rewritten_rows,
                           fct_changes_only, identifier_unique_indexes)
    finally:
        drop_database(test_warehouse.dsn, dsn)
        drop_database(test_warehouse.dsn, pos_dsn)


def test_customers_keep_their_keys_and_a_merge_keeps_the_older_key(two_steps: TwoSteps) -> None:
    before, after, register = two_steps.after_30, two_steps.after_60, two_steps.register
    assert len(after) > len(before) > 300
    # the bridged customers are one now, under the key of the older one; the other is retired
    first, second = (after[register[key][:2]] for key in two_steps.bridged)
    assert first == second
    survivor = first
    [retired] = [key for key in two_steps.bridged if key != survivor]
    assert register[retired][2] == survivor
    assert two_steps.first_seen[register[survivor][:2]] <= two_steps.first_seen[register[retired][:2]]
    # every key of the first month is still in use, or was merged into an older one
    for key in set(before.values()):
        source, source_id, merged_into = register[key]
        now = after[(source, source_id)]
        assert now == key or (now == merged_into and two_steps.first_seen[register[now][:2]]
                              <= two_steps.first_seen[(source, source_id)]), key
    # a record changed key only by such a merge, or by leaving its cluster when an identifier it
    # was joined by turned out to be shared (a split: the cluster it left keeps its key)
    active = set(after.values())
    for record, old_key in before.items():
        if after[record] != old_key:
            assert register[old_key][2] == after[record] or old_key in active, record
    grown = {after[r] for r in after if r not in before} & set(before.values())
    assert grown, "some customers should gain new records and keep their key"
    # the register's dates: every key in use names a customer as of the second run; a key
    # retired by the second run was last in use as of the first
    assert {key: two_steps.last_active_on[key] for key in active} == dict.fromkeys(active, DEMO_DATE)
    retired_keys = {key for key, (_, _, merged) in register.items() if merged is not None}
    assert retired in retired_keys
    assert retired_keys <= set(before.values())
    assert {two_steps.last_active_on[key] for key in retired_keys} == {MIDDLE_DATE}


def test_a_full_rebuild_reproduces_keys_and_transactions(two_steps: TwoSteps) -> None:
    assert two_steps.after_rebuild == two_steps.after_60
    assert two_steps.fct_rebuilt == two_steps.fct_incremental
    assert two_steps.register_after_rebuild == len(two_steps.register)


def test_clusters_without_keying_dates_date_every_record_and_the_lines_are_written_again(
        two_steps: TwoSteps) -> None:
    """Clusters of a release before keyed_at get it as of the run for every record (so
    fct_transactions re-keys every line once); with more records keyed lately than
    transactions_rewrite_all_above_rekeyed_records, fct_transactions writes every line again, to
    the rows of an increment and of a full rebuild."""
    keyed_as_of_run, records = two_steps.keyed_as_of_upgrade
    assert keyed_as_of_run == records > 0
    assert two_steps.fct_changes_only == (True, False)
    assert two_steps.fct_rewritten == two_steps.fct_incremental
    assert two_steps.fct_rewritten_rows == int(two_steps.fct_incremental.split(":")[0])


def test_an_increment_derives_the_changed_records_identifiers_as_a_full_rebuild(
        two_steps: TwoSteps) -> None:
    """The 60-day build derived the identifiers of the new and changed records only (fewer rows
    than the table holds); a full rebuild gives the same rows, digests included. Rules changed
    (a var the model reads): every record's identifiers derived again, and again when they
    come back, to the same rows."""
    total = int(two_steps.identifiers_rebuilt.split(":")[0])
    assert two_steps.identifiers_incremental == two_steps.identifiers_rebuilt
    assert 0 < two_steps.identifiers_derived_by_increment < total
    other_total = int(two_steps.identifiers_under_other_rules.split(":")[0])
    assert 0 < other_total < total  # no email local part of 99 letters
    assert two_steps.identifiers_rules_restored == two_steps.identifiers_rebuilt
    assert two_steps.identifiers_rederived_on_restore == total


def test_a_unique_index_keeps_each_identifier_of_a_record_once(two_steps: TwoSteps) -> None:
    """After increments and after a full refresh (whose old table still holds the old index
    when the post-hook runs), the identifiers have exactly one unique index, on record, type and
    value."""
    expected = ["(record_id, identifier_type, identifier_value)"]
    assert two_steps.identifier_unique_indexes == (expected, expected)


def test_identifiers_made_before_the_incremental_model_are_derived_again(
        two_steps: TwoSteps) -> None:
    """A table of identifiers without the digest column (as an earlier release made it): the
    run adds it and derives every record's identifiers again, the rows of a full rebuild."""
    assert two_steps.identifiers_after_upgrade == two_steps.identifiers_rebuilt
    assert two_steps.identifiers_rederived_on_upgrade == int(two_steps.identifiers_rebuilt.split(":")[0])


def test_an_increment_judges_the_changed_values_to_a_full_rebuilds_shared_identifiers(
        two_steps: TwoSteps) -> None:
    """The 60-day build judged again only the values shared before and those of the rows it
    derived (fewer than the values the identifiers hold); a full rebuild gives the same shared
    values. A table without identifiers_judged_through (as an earlier release made it) has
    every value judged, to the same rows."""
    shared = int(two_steps.shared_rebuilt.split(":")[0])
    assert shared > 0
    assert two_steps.shared_incremental == two_steps.shared_rebuilt
    assert shared <= two_steps.values_judged_by_increment < two_steps.identifier_values
    assert two_steps.shared_after_upgrade == two_steps.shared_rebuilt
    assert two_steps.values_judged_on_upgrade == two_steps.identifier_values


def test_a_new_guardrail_in_the_seed_judges_every_value_again(two_steps: TwoSteps) -> None:
    """A user lowers a limit in the seed identifier_types (emails held by more than one record
    are shared): the next run derives every record's identifiers again and so judges every
    value, to the shared values of a full rebuild under that limit (more of them)."""
    assert two_steps.rederived_on_new_limit == int(two_steps.identifiers_rebuilt.split(":")[0])
    assert two_steps.shared_on_new_limit == two_steps.shared_rebuilt_on_new_limit
    assert (int(two_steps.shared_on_new_limit.split(":")[0])
            > int(two_steps.shared_rebuilt.split(":")[0]))


def test_an_increment_reclusters_the_touched_clusters_with_a_full_rebuilds_keys(
        two_steps: TwoSteps) -> None:
    """The 60-day build took the touched clusters' path; a full rebuild gives its keys (above)."""
    assert two_steps.reclustered_touched_only
    assert two_steps.after_rebuild == two_steps.after_60


def test_clusters_made_before_the_incremental_model_are_upgraded_in_place(two_steps: TwoSteps) -> None:
    """A clusters table without the columns the incremental select compares (as an earlier
    release made it): the run adds them and, every record changed (more than the share
    identity_recluster_all_above_changed_share), clusters every record again, as a first build
    does; every key kept."""
    assert not two_steps.reclustered_touched_only_after_upgrade
    assert two_steps.after_upgrade == two_steps.after_60
    assert two_steps.unclustered_after_upgrade == 0
