"""Consent fails safe through quarantine, end to end on the demo data: a customer with two CRM
contacts unsubscribes on one of them, in a snapshot row that cannot be loaded. Before, the row's
contact was closed as gone, the other contact still said yes, and the customer kept consent (and
was pushed). Now the contact stays, as unreadable, and the customer has no consent.

And consent flows back from the campaign tools: an address Mailchimp reports as unsubscribed or
cleaned, pulled by the nightly task, loaded as the source mailchimp_opt_outs and built by dbt,
takes the customer's consent away although the CRM says yes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from trebol.airflow import tasks
from trebol.demo import campaign_tool
from trebol.extract import load
from trebol.extract.sources import load_sources
from trebol.warehouse import ddl

from ..fakes.mailchimp import FakeMailchimp
from ..helpers import (
    DEMO_DATE,
    SessionWarehouse,
    copy_database,
    drop_database,
    fresh_database,
    load_sources_until,
    local_midnight,
    run_dbt,
    use_mailchimp_destination,
)

pytestmark = pytest.mark.integration
NEXT_DATE = DEMO_DATE + timedelta(days=1)


def _unsubscribed_unreadably(row: dict[str, str], fault: str) -> bytes:
    """The contact's row, unsubscribed at the end of DEMO_DATE's day, with ``fault``."""
    row = {**row, "marketing_consent": "false",
           "unsubscribed_at": f"{DEMO_DATE.isoformat()}T18:00:00+02:00",
           "updated_at": f"{DEMO_DATE.isoformat()}T18:00:00+02:00"}
    if fault == "unreadable timestamp":
        row["consent_updated_at"] = "yesterday"
    text = io.StringIO()
    csv.DictWriter(text, fieldnames=list(row), lineterminator="\n").writerow(row)
    line = text.getvalue().encode("utf-8")
    if fault == "latin-1 byte":
        line = line.replace(row["first_name"].encode(), row["first_name"].encode() + b"\xe9", 1)
    return line


@pytest.fixture(scope="module")
def consenting_warehouse(test_warehouse: SessionWarehouse, demo_sources: object,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding the demo sources loaded until DEMO_DATE and dim_customers built as of
    it: each test copies it (a template) and changes its copy."""
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_consent_base")
    work = tmp_path_factory.mktemp("consent")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ddl.bootstrap(conn)
            load_sources_until(conn, test_warehouse.pos_dsn, test_warehouse.settings.sources_dir,
                               DEMO_DATE)
        run_dbt(dsn, local_midnight(DEMO_DATE), "seed", work_dir=work)
        run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "+dim_customers", work_dir=work)
        yield dsn
    finally:
        drop_database(test_warehouse.dsn, dsn)


@pytest.mark.parametrize("fault", ["latin-1 byte", "unreadable timestamp"])
def test_an_unsubscribe_lost_in_quarantine_takes_the_customers_consent_away(
        test_warehouse: SessionWarehouse, consenting_warehouse: str, tmp_path: Path,
        fault: str) -> None:
    dsn = copy_database(test_warehouse.dsn, consenting_warehouse, "trebol_test_consent")
    sources = load_sources()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            key, contacts = conn.execute("""select customer_key, crm_contact_ids
                from marts.dim_customers where has_marketing_consent and crm_contact_ids like '%%,%%'
                order by customer_key limit 1""").fetchone()
            unsubscribing = contacts.split(",")[0]
            # DEMO_DATE's snapshot: the day before's, with that contact unsubscribed, unreadably
            previous = test_warehouse.settings.sources_dir / "crm" / "contacts" / \
                f"{(DEMO_DATE - timedelta(days=1)).isoformat()}.csv"
            lines = previous.read_bytes().splitlines(keepends=True)
            header = next(csv.reader([lines[0].decode()]))
            [index] = [i for i, line in enumerate(lines) if line.startswith(f"{unsubscribing},".encode())]
            row = dict(zip(header, next(csv.reader([lines[index].decode()])), strict=True))
            lines[index] = _unsubscribed_unreadably(row, fault)
            snapshot = tmp_path / "sources" / "crm" / "contacts" / f"{DEMO_DATE.isoformat()}.csv"
            snapshot.parent.mkdir(parents=True)
            snapshot.write_bytes(b"".join(lines))
            end = local_midnight(NEXT_DATE)
            [result] = load.extract_and_load(conn, sources["crm_contacts"], tmp_path / "sources",
                                             load.Interval(end - timedelta(days=1), end), 0,
                                             "Europe/Madrid")
            run_dbt(dsn, end, "run", "--select", "+dim_customers", work_dir=tmp_path)
            after = conn.execute("""select has_marketing_consent, crm_contact_ids
                from marts.dim_customers where customer_key = %s""", (key,)).fetchone()
            reason = conn.execute("""select reason from raw._quarantine where batch_id = %s
                and payload like %s""", (result.batch_id, f"{unsubscribing},%")).fetchone()
            carried = conn.execute("""select _unreadable, marketing_consent from raw.crm_contacts
                where contact_id = %s and _valid_to is null""", (unsubscribing,)).fetchall()
    finally:
        drop_database(test_warehouse.dsn, dsn)
    assert reason is not None and "1 unreadable (row quarantined)" in result.notes
    assert carried == [(True, True)]  # the last readable state, flagged: not trusted
    assert after == (False, contacts)  # still both contacts, no consent


def test_the_demos_mailchimp_opt_outs_take_consent_the_crm_gives(consenting_warehouse: str) -> None:
    """The simulator's Mailchimp exports name a few people who consent in the CRM: loaded as
    the demo's other sources, they are customers without consent."""
    with psycopg.connect(consenting_warehouse, autocommit=True) as conn:
        opted_out = conn.execute("""select c.customer_key, c.has_marketing_consent,
                bool_and(contacts.has_marketing_consent and not contacts.is_unreadable)
            from marts.dim_customers c
            cross join lateral unnest(string_to_array(c.crm_contact_ids, ',')) as ids(contact_id)
            inner join intermediate.int_crm__contacts_as_of contacts
                on contacts.contact_id = ids.contact_id
            where c.is_opted_out_in_campaign_tool and not c.is_unsubscribed
            group by c.customer_key, c.has_marketing_consent""").fetchall()
    assert opted_out, "the demo's opt-outs matched no customer"
    assert {consents for _, consents, _ in opted_out} == {False}
    assert any(crm_says_yes for _, _, crm_says_yes in opted_out)


def test_an_opt_out_reported_by_mailchimp_takes_the_customers_consent_away(
        test_warehouse: SessionWarehouse, consenting_warehouse: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The nightly pull writes what the fake Mailchimp reports (one address unsubscribed, in
    other letter case; another still subscribed), the loader loads it as the source
    mailchimp_opt_outs for the next day's interval, and dim_customers as of the next day has the
    first customer without consent, the second still with it."""
    key, list_id = "0123456789abcdef0123456789abcdef-us21", "a1b2c3d4e5"
    dsn = copy_database(test_warehouse.dsn, consenting_warehouse, "trebol_test_consent_opt_out")
    end = local_midnight(NEXT_DATE)
    interval = load.Interval(end - timedelta(days=1), end)
    unsubscribed_at = end - timedelta(hours=6)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, FakeMailchimp(api_key=key) as fake:
            (leaving, leaving_email), (staying, staying_email) = conn.execute("""select
                customer_key, email from marts.dim_customers where has_marketing_consent
                and email is not null order by customer_key limit 2""").fetchall()
            fake.add_list(list_id)
            fake.add_member(list_id, leaving_email.upper(), "unsubscribed",
                            last_changed=unsubscribed_at)
            fake.add_member(list_id, staying_email, "subscribed")
            sources_dir = use_mailchimp_destination(monkeypatch, tmp_path, fake.base_url, key,
                                                    list_id)
            assert tasks.pull_consent_feedback(interval) == {"news": 1}
            [result] = load.extract_and_load(conn, load_sources()["mailchimp_opt_outs"],
                                             sources_dir, interval, 0, "Europe/Madrid")
            run_dbt(dsn, end, "run", "--select", "+dim_customers", work_dir=tmp_path)
            after = {row[0]: row[1:] for row in conn.execute("""select customer_key,
                has_marketing_consent, is_opted_out_in_campaign_tool, campaign_tool_opted_out_at
                from marts.dim_customers where customer_key in (%s, %s)""",
                (leaving, staying)).fetchall()}
    finally:
        drop_database(test_warehouse.dsn, dsn)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (1, 1, 0)
    assert after == {leaving: (False, True, unsubscribed_at), staying: (True, False, None)}


def _deliver(drop_dir: Path, sync: str, day: date, members: list[tuple[str, str]]) -> None:
    """A completed file delivery of ``sync`` for ``day`` holding ``members``, laid out as the
    file destination lays it out (trebol.activation.destinations.file)."""
    folder = drop_dir / "crm_files" / sync / day.isoformat()
    folder.mkdir(parents=True)
    with (folder / "snapshot.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(("customer_key", "email", "offer"))
        writer.writerows((key, email, "WINBACK20") for key, email in members)
    (folder / "manifest.json").write_text(json.dumps({
        "sync": sync, "audience": "aud_winback_high_value", "destination": "crm_files",
        "as_of_date": day.isoformat(), "delivery": day.isoformat(),
        "files": [{"name": "snapshot.csv", "rows": len(members)}]}))
    (folder / "_SUCCESS").touch()


def test_an_unsubscribe_or_a_hard_bounce_in_the_event_export_takes_consent_away(
        test_warehouse: SessionWarehouse, consenting_warehouse: str, tmp_path: Path) -> None:
    """The campaign tool sends three campaigns of DEMO_DATE (one member each): the first member
    opens and unsubscribes (within three days), the second's address bounces hard, the third's is
    delivered. Its event export, loaded by the run four days later, takes the consent of the
    first two away as of then, and leaves the third's. A fourth customer's event row cannot be
    read (its time is garbled: quarantined): it may have been an unsubscribe, so that customer
    has no consent either (fail safe)."""
    dsn = copy_database(test_warehouse.dsn, consenting_warehouse, "trebol_test_consent_events")
    later = DEMO_DATE + timedelta(days=4)
    end = local_midnight(later)
    interval = load.Interval(end - timedelta(days=1), end)
    outcomes = {"unsubscribes": campaign_tool.Rates(hard_bounce=0, soft_bounce=0, open=1, unsubscribe=1),
                "bounces": campaign_tool.Rates(hard_bounce=1),
                "stays": campaign_tool.Rates(hard_bounce=0, soft_bounce=0, open=0, unsubscribe=0)}
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            people = conn.execute("""select customer_key, email from marts.dim_customers
                where has_marketing_consent and email is not null order by customer_key
                limit 4""").fetchall()
            unreadable_key, unreadable_email = people.pop()
            for (key, email), sync in zip(people, outcomes, strict=True):
                _deliver(tmp_path / "drop", sync, DEMO_DATE, [(key, email.upper())])
            deliveries = campaign_tool.file_deliveries(tmp_path / "drop")
            written = campaign_tool.export(
                tmp_path / "sources", [(d, outcomes[d.sync]) for d in deliveries], seed=7,
                timezone="Europe/Madrid", until=later)
            with written[0].open("a", encoding="utf-8") as export_day:
                export_day.write(f"x:{unreadable_key}:unsubscribe,x/{DEMO_DATE},{unreadable_key},"
                                 f"{unreadable_email},unsubscribe,the 30th at noon\n")
            results = load.extract_and_load(conn, load_sources()["campaign_events"],
                                            tmp_path / "sources", interval, 0, "Europe/Madrid")
            run_dbt(dsn, end, "run", "--select", "+dim_customers", work_dir=tmp_path)
            after = dict(conn.execute("""select customer_key, has_marketing_consent
                from marts.dim_customers where customer_key = any(%s)""",
                                      ([key for key, _ in people] + [unreadable_key],)).fetchall())
            events = conn.execute("""select customer_key, event_type from raw.campaign_events
                order by customer_key, occurred_at, event_type""").fetchall()
    finally:
        drop_database(test_warehouse.dsn, dsn)
    assert written[0].name == f"{DEMO_DATE.isoformat()}.csv" and len(written) <= 4
    assert [result.batch_id for result in results] == [f"campaigns/events/{path.name}" for path in written]
    assert sum(result.rows_read for result in results) == sum(r.rows_loaded for r in results) + 1
    assert sum(result.rows_quarantined for result in results) == 1
    assert sum(result.rows_loaded for result in results) == len(events)
    (unsubscribed, _), (bounced, _), (stayed, _) = people
    assert [kind for key, kind in events if key == unsubscribed] == [
        "send", "delivery", "open", "unsubscribe"]
    assert [kind for key, kind in events if key == bounced] == ["send", "hard_bounce"]
    assert [kind for key, kind in events if key == stayed] == ["send", "delivery"]
    assert after == {unsubscribed: False, bounced: False, stayed: True, unreadable_key: False}
