"""Diff syncs on a real PostgreSQL: staging with holdouts, first and incremental syncs, consent
removals, resumption after a crash, refusals, dry runs; the file destination's deliveries.

A small audience table stands in for a dbt audience model (``audiences.aud_test``), and a small
``marts.customer_segments`` for the consent the removals are explained by; the activation role
(``trebol_activation``) does the work, as the push task does.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from trebol import cli
from trebol.activation import destinations, staging, sync
from trebol.activation.config import ActivationConfig, parse
from trebol.activation.destinations import file as file_destination
from trebol.activation.destinations.base import (
    Batch,
    Connection,
    RecordOutcome,
    SyncContext,
    TransientDestinationError,
)
from trebol.demo.webhook_receiver import WebhookReceiver
from trebol.warehouse import ddl

from ..fakes.mailchimp import FakeMailchimp
from ..helpers import PROJECT_DIR, SessionWarehouse, drop_database, fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.server]

DAY = date(2026, 6, 30)
FIELDS = {"email": "email", "first_name": "first_name", "offer": "offer"}


def config(share: float = 0.1, batch_size: int = 40):
    return parse({
        "destinations": {"drop": {"type": "file", "batch_size": batch_size}},
        "syncs": [{"name": "test_to_drop", "audience": "aud_test", "destination": "drop",
                   "holdout_share": share, "fields": FIELDS}],
    })


@pytest.fixture(scope="module")
def activation_dsn(test_warehouse: SessionWarehouse) -> Iterator[str]:
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_sync")
    with psycopg.connect(dsn, autocommit=True) as conn:
        ddl.bootstrap(conn)
        conn.execute("""create table marts.customer_segments (customer_key text primary key,
            as_of_date date not null, has_marketing_consent boolean not null)""")
        conn.execute("""create table audiences.aud_test (customer_key text, as_of_date date,
            email text, first_name text, offer text, has_marketing_consent boolean)""")
        conn.execute(f"grant select on marts.customer_segments, audiences.aud_test "
                     f"to {ddl.ACTIVATION}")
    yield dsn
    drop_database(test_warehouse.dsn, dsn)


@pytest.fixture
def conn(activation_dsn: str) -> Iterator[psycopg.Connection]:
    """The activation role on a clean slate: no audience, no sync history."""
    with psycopg.connect(activation_dsn, autocommit=True) as admin:
        admin.execute("truncate audiences.aud_test, marts.customer_segments, "
                      "activation.audience_members, activation.staged_audiences, "
                      "activation.holdouts, activation.sync_state, activation.sync_runs cascade")
    with psycopg.connect(activation_dsn, autocommit=True) as connection:
        connection.execute(f"set role {ddl.ACTIVATION}")
        yield connection


def set_audience(dsn: str, day: date, people: dict[str, tuple[str | None, str, bool]]) -> None:
    """The audience (and customer_segments) for a date: key -> (email, offer, consent)."""
    with psycopg.connect(dsn, autocommit=True) as admin, admin.transaction():
        admin.execute("truncate audiences.aud_test, marts.customer_segments")
        with admin.cursor().copy("copy audiences.aud_test from stdin") as copy:
            for key, (email, offer, consent) in people.items():
                copy.write_row((key, day, email, f"Name {key}", offer, consent))
        with admin.cursor().copy("copy marts.customer_segments from stdin") as copy:
            for key, (_, _, consent) in people.items():
                copy.write_row((key, day, consent))


def people(count: int) -> dict[str, tuple[str | None, str, bool]]:
    return {f"c{index:04d}": (f"p{index}@example.com", "welcome10", True) for index in range(count)}


def file_drop(tmp_path: Path) -> file_destination.FileDestination:
    return file_destination.build("drop", Connection("", str(tmp_path)), {"batch_size": 40})


def stage_and_sync(conn: psycopg.Connection, settings, destination, day: date = DAY,
                   **options) -> sync.SyncReport:
    staging.stage_audiences(conn, settings, day)
    return sync.run_sync(conn, settings, "test_to_drop", day, f"run-{day}", destination, **options)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_first_sync_sends_all_then_only_what_changed(conn, activation_dsn, tmp_path):
    audience = people(1000)
    set_audience(activation_dsn, DAY, audience)
    settings = config()
    first = stage_and_sync(conn, settings, file_drop(tmp_path))
    sent = first.members - first.held_out
    assert (first.status, first.added, first.changed, first.removed) == ("succeeded", sent, 0, 0)
    assert 60 <= first.held_out <= 140  # 10 % of 1,000, drawn by hash
    delivery = tmp_path / "drop" / "test_to_drop" / DAY.isoformat()
    snapshot = read_csv(delivery / "snapshot.csv")
    assert len(snapshot) == sent and list(snapshot[0]) == ["customer_key", *FIELDS]
    manifest = json.loads((delivery / "manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == hashlib.sha256(
        (delivery / "snapshot.csv").read_bytes()).hexdigest()
    assert (delivery / "_SUCCESS").exists()
    assert (delivery / "snapshot.csv").read_bytes().count(b"\r\n") == sent + 1  # RFC 4180
    assert not [path for path in (tmp_path / "drop" / "test_to_drop").iterdir()
                if path.name.startswith(".")]  # no temporary folder left

    # 1 % of the customers change offer: only they are sent, as updates (held out ones: not)
    next_day = DAY + timedelta(days=1)
    changed = [key for key in sorted(audience)[:10]]
    for key in changed:
        audience[key] = (audience[key][0], "vip20", True)
    set_audience(activation_dsn, next_day, audience)
    second = stage_and_sync(conn, settings, file_drop(tmp_path), next_day)
    held = {row[0] for row in conn.execute(
        "select customer_key from activation.audience_members where as_of_date = %s "
        "and is_holdout", (next_day,))}
    assert (second.added, second.removed) == (0, 0)
    assert second.changed == len(set(changed) - held) > 0
    changes = read_csv(tmp_path / "drop" / "test_to_drop" / next_day.isoformat() / "changes.csv")
    assert {row["customer_key"] for row in changes} == set(changed) - held
    assert {row["operation"] for row in changes} == {"update"}

    # the same date again: nothing to send, no new delivery
    again = stage_and_sync(conn, settings, file_drop(tmp_path), next_day)
    assert (again.added, again.changed, again.removed, again.delivery) == (0, 0, 0, "")


def test_holdouts_are_never_sent_and_keep_their_side(conn, activation_dsn, tmp_path):
    audience = people(600)
    set_audience(activation_dsn, DAY, audience)
    settings = config(share=0.2)
    stage_and_sync(conn, settings, file_drop(tmp_path))
    held = {row[0] for row in conn.execute(
        "select customer_key from activation.holdouts where audience = 'aud_test'")}
    synced = {row[0] for row in conn.execute("select customer_key from activation.sync_state")}
    assert held and not held & synced and len(held) + len(synced) == 600
    # later dates: the same customers are held out, assigned on the first date
    for offset in (1, 2):
        set_audience(activation_dsn, DAY + timedelta(days=offset), audience)
        stage_and_sync(conn, settings, file_drop(tmp_path), DAY + timedelta(days=offset))
    assert {row[0] for row in conn.execute(
        "select customer_key from activation.holdouts where audience = 'aud_test'")} == held
    assert conn.execute("select distinct assigned_on from activation.holdouts").fetchall() == [(DAY,)]
    assert not held & {row[0] for row in conn.execute("select customer_key from activation.sync_records")}


def test_a_customer_who_withdraws_consent_is_removed_and_never_added_again(conn, activation_dsn,
                                                                            tmp_path):
    audience = people(200)
    set_audience(activation_dsn, DAY, audience)
    settings = config(share=0)
    stage_and_sync(conn, settings, file_drop(tmp_path))
    audience["c0007"] = ("p7@example.com", "welcome10", False)
    for offset in (1, 2, 3):
        set_audience(activation_dsn, DAY + timedelta(days=offset), audience)
        report = stage_and_sync(conn, settings, file_drop(tmp_path), DAY + timedelta(days=offset))
        assert (report.added, report.removed) == ((0, 1) if offset == 1 else (0, 0))
    assert conn.execute("""select operation, reason from activation.sync_records
        where customer_key = 'c0007' order by sync_run_id""").fetchall() == [
        ("add", None), ("remove", "consent_withdrawn")]
    assert "c0007" not in {row["customer_key"] for row in read_csv(
        tmp_path / "drop" / "test_to_drop" / (DAY + timedelta(days=1)).isoformat() / "snapshot.csv")}


class CrashingDestination:
    """A file drop that dies (as a killed process would, mid-sync) before its n-th batch."""

    def __init__(self, inner: file_destination.FileDestination, crash_before: int) -> None:
        self.inner, self.crash_before, self.sent = inner, crash_before, 0
        self.batch_size = inner.batch_size

    def open(self, context: SyncContext) -> None:
        self.inner.open(context)

    def send(self, batch: Batch) -> list[RecordOutcome]:
        if self.sent == self.crash_before:
            raise TransientDestinationError("drop: connection reset (simulated)")
        self.sent += 1
        return self.inner.send(batch)

    def close(self, context, snapshot) -> None:
        self.inner.close(context, snapshot)


def test_a_sync_failing_midway_resumes_and_ends_in_the_exact_state(conn, activation_dsn,
                                                                   tmp_path, tmp_path_factory):
    set_audience(activation_dsn, DAY, people(500))
    settings = config(share=0.1)
    staging.stage_audiences(conn, settings, DAY)
    with pytest.raises(TransientDestinationError):
        sync.run_sync(conn, settings, "test_to_drop", DAY, "run-1",
                      CrashingDestination(file_drop(tmp_path), crash_before=3))
    status, pending = conn.execute("""select runs.status, count(*) filter (where records.status =
        'pending') from activation.sync_runs runs join activation.sync_records records using
        (sync_run_id) group by runs.status""").fetchone()
    assert status == "failed" and pending > 0
    resumed = sync.run_sync(conn, settings, "test_to_drop", DAY, "run-2", file_drop(tmp_path))
    assert resumed.status == "succeeded" and resumed.added == resumed.members - resumed.held_out
    assert conn.execute("select count(*) from activation.sync_runs").fetchone()[0] == 1

    # the same audience synced cleanly elsewhere gives the same files and state
    clean_dir = tmp_path_factory.mktemp("clean")
    conn.execute("delete from activation.sync_runs")
    conn.execute("delete from activation.sync_state")
    clean = sync.run_sync(conn, settings, "test_to_drop", DAY, "run-3", file_drop(clean_dir))
    assert clean.added == resumed.added
    for name in ("snapshot.csv", "changes.csv"):
        assert ((tmp_path / "drop" / "test_to_drop" / DAY.isoformat() / name).read_bytes()
                == (clean_dir / "drop" / "test_to_drop" / DAY.isoformat() / name).read_bytes())


def test_an_audience_with_a_duplicate_customer_or_not_staged_stops_its_sync(conn, activation_dsn,
                                                                           tmp_path):
    settings = config()
    with pytest.raises(sync.SyncRefused, match="was not staged for 2026-06-30"):
        sync.run_sync(conn, settings, "test_to_drop", DAY, "run", file_drop(tmp_path))
    set_audience(activation_dsn, DAY, people(20))
    with psycopg.connect(activation_dsn, autocommit=True) as admin:
        admin.execute("insert into audiences.aud_test select * from audiences.aud_test "
                      "where customer_key = 'c0003'")
    [staged] = staging.stage_audiences(conn, settings, DAY)
    assert staged.status == "refused" and "c0003 (2 rows)" in staged.error
    with pytest.raises(sync.SyncRefused, match="holds customers more than once: c0003"):
        sync.run_sync(conn, settings, "test_to_drop", DAY, "run", file_drop(tmp_path))
    assert conn.execute("select status from activation.sync_runs").fetchall() == [("failed",)] * 2
    assert not (tmp_path / "drop" / "test_to_drop" / DAY.isoformat()).exists()


def test_an_older_date_is_never_sent_over_a_newer_one(conn, activation_dsn, tmp_path):
    settings = config()
    for day in (DAY, DAY - timedelta(days=1)):
        set_audience(activation_dsn, day, people(30 if day == DAY else 50))
        report = stage_and_sync(conn, settings, file_drop(tmp_path), day)
    assert report.status == "skipped" and "2026-06-30 was delivered already" in report.error
    assert conn.execute("select count(*) from activation.sync_state").fetchone()[0] <= 30


def test_the_dry_run_shows_the_changes_and_sends_nothing(conn, activation_dsn, tmp_path):
    set_audience(activation_dsn, DAY, people(100))
    settings = config(share=0)
    staging.stage_audiences(conn, settings, DAY)
    preview = sync.preview(conn, settings, "test_to_drop", DAY)
    assert (preview.added, preview.changed, preview.removed) == (100, 0, 0)
    assert [example["customer_key"] for example in preview.examples["add"]] == [
        "c0000", "c0001", "c0002"]
    assert preview.examples["add"][0]["fields"] == {
        "email": "p0@example.com", "first_name": "Name c0000", "offer": "welcome10"}
    assert conn.execute("select count(*) from activation.sync_runs").fetchone()[0] == 0
    assert not (tmp_path / "drop").exists()


# ---- against the local fakes of the campaign tools ----------------------------------------------

API_KEY = "0123456789abcdef0123456789abcdef-us21"
FAST = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "timeout_seconds": 2, "max_attempts": 12}


def two_tools(share: float = 0.1) -> ActivationConfig:
    return parse({
        "destinations": {"mailchimp": {"type": "mailchimp", "connection": "mc", **FAST},
                         "hook": {"type": "webhook", "connection": "hook", "batch_size": 50,
                                  **FAST}},
        "syncs": [{"name": "to_mailchimp", "audience": "aud_test", "destination": "mailchimp",
                   "holdout_share": share,
                   "fields": {"email_address": "email", "FNAME": "first_name", "OFFER": "offer"}},
                  {"name": "to_hook", "audience": "aud_test", "destination": "hook",
                   "holdout_share": share, "fields": FIELDS}],
    })


@pytest.fixture
def tools(tmp_path: Path) -> Iterator[tuple[FakeMailchimp, WebhookReceiver, dict[str, Any]]]:
    with FakeMailchimp(api_key=API_KEY) as mailchimp, \
            WebhookReceiver(["whsec_test"], out_dir=tmp_path / "hook") as receiver:
        mailchimp.add_list("list1", merge_fields={"FNAME": "text", "OFFER": "text"})
        connections = {
            "mailchimp": Connection("mc", mailchimp.base_url, "trebol", API_KEY,
                                    {"list_id": "list1"}),
            "hook": Connection("hook", receiver.url, "", "whsec_test"),
        }
        yield mailchimp, receiver, connections


def push_all(conn, settings: ActivationConfig, connections, day: date) -> dict[str, sync.SyncReport]:
    """Stage the day, then every sync (a failing one leaves the others done)."""
    staging.stage_audiences(conn, settings, day)
    reports = {}
    for spec in settings.syncs:
        destination_spec = settings.destinations[spec.destination]
        module = destinations.module(destination_spec.type)
        destination = module.build(spec.destination, connections[spec.destination],
                                   destination_spec.options)
        try:
            reports[spec.name] = sync.run_sync(conn, settings, spec.name, day, f"run-{day}",
                                               destination)
        except TransientDestinationError:
            reports[spec.name] = None
    return reports


def expected_members(conn, day: date) -> dict[str, str]:
    return dict(conn.execute("""select customer_key, email from activation.audience_members
        where as_of_date = %s and not is_holdout""", (day,)).fetchall())


def test_storms_of_429_and_503_end_in_the_exact_state_without_duplicates(conn, activation_dsn,
                                                                         tools):
    mailchimp, receiver, connections = tools
    set_audience(activation_dsn, DAY, people(1200))
    settings = two_tools()
    mailchimp.throttle_next(6)
    mailchimp.fail_next(3, status=503, retry_after=0)
    mailchimp.lose_next_response(1, endpoint="POST /lists/{list_id}")
    receiver.fail_next(4, status=503, retry_after=0)
    receiver.fail_next(2, status=429)
    receiver.lose_next_response(1)
    reports = push_all(conn, settings, connections, DAY)
    wanted = expected_members(conn, DAY)
    assert {name: (report.status, report.added) for name, report in reports.items()} == {
        "to_mailchimp": ("succeeded", len(wanted)), "to_hook": ("succeeded", len(wanted))}
    # Mailchimp holds each member once, subscribed, tagged with the audience; the receiver
    # applied each batch once (the resent one was recognised by its idempotency key)
    assert mailchimp.segment_emails("list1", "aud_test") == set(wanted.values())
    assert len(mailchimp.members("list1")) == len(wanted)
    assert mailchimp.count(status=429) >= 6 and mailchimp.count(status=503) >= 3
    assert {key: fields["email"] for key, fields in receiver.state("to_hook").items()} == wanted
    assert len(receiver.batches("to_hook")) == -(-len(wanted) // 50) and receiver.replays >= 1

    # the next day 1 % changed: only they are sent (one batch subscribe, one webhook batch)
    changed = sorted(wanted)[:12]
    audience = people(1200)
    for key in changed:
        audience[key] = (audience[key][0], "vip20", True)
    set_audience(activation_dsn, DAY + timedelta(days=1), audience)
    mailchimp.clear_log()
    batches_before = len(receiver.batches("to_hook"))
    reports = push_all(conn, settings, connections, DAY + timedelta(days=1))
    assert {name: (report.added, report.changed, report.removed)
            for name, report in reports.items()} == {"to_mailchimp": (0, 12, 0),
                                                     "to_hook": (0, 12, 0)}
    assert mailchimp.count("POST /lists/{list_id}") == 1
    assert {mailchimp.member("list1", wanted[key])["merge_fields"]["OFFER"] for key in changed} == {
        "vip20"}
    assert len(receiver.batches("to_hook")) == batches_before + 1


def test_an_unsubscribed_customer_is_removed_everywhere_and_never_added_again(conn, activation_dsn,
                                                                              tools):
    mailchimp, receiver, connections = tools
    audience = people(60)
    # one person unsubscribed in Mailchimp itself: Mailchimp refuses to resubscribe them, the
    # record fails (retried each run, never forced)
    mailchimp.add_member("list1", "p5@example.com", "unsubscribed")
    set_audience(activation_dsn, DAY, audience)
    settings = two_tools(share=0)
    first = push_all(conn, settings, connections, DAY)
    assert first["to_mailchimp"].failed == 1 and first["to_mailchimp"].status == "partial"
    assert "Compliance" in conn.execute("select error from activation.sync_records where "
                                        "customer_key = 'c0005' and status = 'failed'").fetchone()[0]
    assert mailchimp.member("list1", "p5@example.com")["status"] == "unsubscribed"
    # another withdraws consent in the CRM: removed from the tag and unsubscribed in Mailchimp,
    # removed from the receiver, and not sent again on the following days
    audience["c0009"] = ("p9@example.com", "welcome10", False)
    for offset in (1, 2):
        set_audience(activation_dsn, DAY + timedelta(days=offset), audience)
        push_all(conn, settings, connections, DAY + timedelta(days=offset))
    assert "p9@example.com" not in mailchimp.segment_emails("list1", "aud_test")
    assert mailchimp.member("list1", "p9@example.com")["status"] == "unsubscribed"
    assert mailchimp.member("list1", "p5@example.com")["status"] == "unsubscribed"
    assert "c0009" not in receiver.state("to_hook")
    assert conn.execute("""select operation, reason from activation.sync_records
        where customer_key = 'c0009' and sync_name = 'to_hook' order by sync_run_id""").fetchall() == [
        ("add", None), ("remove", "consent_withdrawn")]


def test_a_destination_that_hangs_leaves_the_other_sync_done_and_is_resumed_exactly(
        conn, activation_dsn, tools):
    """The receiver holds the first batch longer than the client waits (then applies it): the
    webhook sync fails as transient after its attempts, the Mailchimp sync is done all the same;
    the next attempt resumes the run with the same idempotency keys, the receiver replays its
    answer for the held batch, and every batch is applied exactly once."""
    import time

    _, receiver, connections = tools
    set_audience(activation_dsn, DAY, people(100))
    settings = two_tools(share=0)
    hook = settings.destinations["hook"]
    settings = parse({
        "destinations": {name: {"type": spec.type, "connection": spec.connection,
                                **spec.options} for name, spec in settings.destinations.items()
                         if name != "hook"}
        | {"hook": {"type": "webhook", "connection": "hook", **hook.options,
                    "max_attempts": 2, "timeout_seconds": 1}},
        "syncs": [{"name": spec.name, "audience": spec.audience, "destination": spec.destination,
                   "fields": dict(spec.fields)} for spec in settings.syncs]})
    receiver.hang_next(1, seconds=3)
    reports = push_all(conn, settings, connections, DAY)
    assert reports["to_hook"] is None and reports["to_mailchimp"].status == "succeeded"
    assert conn.execute("select status from activation.sync_runs where sync_name = 'to_hook'"
                        ).fetchone()[0] == "failed"
    time.sleep(3.5)  # the held batch is applied by the receiver meanwhile
    resumed = push_all(conn, settings, connections, DAY)
    assert resumed["to_hook"].status == "succeeded" and resumed["to_hook"].added == 100
    assert conn.execute("select count(*) from activation.sync_runs where sync_name = 'to_hook'"
                        ).fetchone()[0] == 1  # the same run, resumed
    assert len(receiver.state("to_hook")) == 100
    assert len(receiver.batches("to_hook")) == 2 and receiver.replays >= 1
    assert resumed["to_mailchimp"].added == 0  # already delivered: nothing to send


class DiskFullOnce(file_destination.FileDestination):
    """The file drop on a disk that fills up during the first batch's write: the part file's
    temporary name points at /dev/full, where the kernel answers every write with ENOSPC."""

    def send(self, batch: Batch) -> list[RecordOutcome]:
        if not getattr(self, "filled", False):
            self.filled = True
            parts = self.base / self.name / batch.sync_name / f".parts-{batch.sync_run_id}"
            parts.mkdir(parents=True, exist_ok=True)
            (parts / f"{batch.batch_no:09d}.tmp").symlink_to("/dev/full")
        return super().send(batch)


def test_a_full_disk_fails_the_sync_in_one_line_and_the_rerun_delivers_exactly(
        conn, activation_dsn, tmp_path):
    set_audience(activation_dsn, DAY, people(100))
    settings = config(share=0)
    staging.stage_audiences(conn, settings, DAY)
    full = DiskFullOnce("drop", tmp_path, {"batch_size": 40})
    with pytest.raises(TransientDestinationError) as raised:
        sync.run_sync(conn, settings, "test_to_drop", DAY, "run-1", full)
    assert "drop: cannot write under" in str(raised.value)
    assert "No space left on device" in str(raised.value)
    assert conn.execute("select status, error from activation.sync_runs").fetchone() == (
        "failed", str(raised.value))
    folder = tmp_path / "drop" / "test_to_drop"
    assert not (folder / DAY.isoformat()).exists()
    assert not list(folder.rglob("*.tmp"))  # the half-written file is gone
    resumed = sync.run_sync(conn, settings, "test_to_drop", DAY, "run-2", full)
    assert (resumed.status, resumed.added) == ("succeeded", 100)
    assert len(read_csv(folder / DAY.isoformat() / "snapshot.csv")) == 100
    assert len(read_csv(folder / DAY.isoformat() / "changes.csv")) == 100
    assert sorted(path.name for path in folder.iterdir()) == [DAY.isoformat()]


def test_trebol_sync_dry_run_prints_the_changes_then_sync_sends_them(
        conn, activation_dsn, tmp_path, monkeypatch, capsys):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name in ("sources.yml", "quality.yml"):
        (config_dir / name).write_text((PROJECT_DIR / "config" / name).read_text())
    (config_dir / "destinations.yml").write_text(
        "destinations:\n  drop: {type: file}\n"
        "syncs:\n  - {name: test_to_drop, audience: aud_test, destination: drop,\n"
        "     fields: {email: email, first_name: first_name, offer: offer}}\n")
    set_audience(activation_dsn, DAY, people(5))
    staging.stage_audiences(conn, config(share=0), DAY)
    monkeypatch.setenv("TREBOL_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("TREBOL_WAREHOUSE_DSN", activation_dsn)
    monkeypatch.setenv("TREBOL_FILE_DROP_DIR", str(tmp_path / "outbox"))
    assert cli.main(["sync", "--dry-run"]) == 0  # the latest staged date
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == ("test_to_drop (aud_test -> drop) 2026-06-30: dry run; members 5, "
                          "held out 0, adds 5, changes 0, removals 0, failed 0")
    assert printed[1].startswith('  add    {"customer_key": "c0000", "fields": {"email": '
                                 '"p0@example.com"')
    assert len(printed) == 4  # three examples
    assert conn.execute("select count(*) from activation.sync_runs").fetchone() == (0,)
    assert not (tmp_path / "outbox").exists()
    assert cli.main(["sync", "--date", "2026-06-30", "--sync", "test_to_drop"]) == 0
    assert capsys.readouterr().out.startswith(
        "test_to_drop (aud_test -> drop) 2026-06-30: succeeded; members 5, held out 0, adds 5")
    assert len(read_csv(tmp_path / "outbox" / "drop" / "test_to_drop" / DAY.isoformat()
                        / "snapshot.csv")) == 5


def test_a_full_resync_sends_everyone_again_and_old_runs_leave_with_the_retention(
        conn, activation_dsn, tmp_path):
    settings = parse({"destinations": {"drop": {"type": "file", "batch_size": 40}},
                      "syncs": [{"name": "test_to_drop", "audience": "aud_test",
                                 "destination": "drop", "fields": FIELDS}],
                      "audit": {"retention_days": 3}})
    audience = people(50)
    set_audience(activation_dsn, DAY, audience)
    stage_and_sync(conn, settings, file_drop(tmp_path))
    later = DAY + timedelta(days=5)
    set_audience(activation_dsn, later, audience)
    report = stage_and_sync(conn, settings, file_drop(tmp_path), later, full_resync=True)
    assert (report.added, report.changed, report.removed) == (0, 50, 0)
    changes = read_csv(tmp_path / "drop" / "test_to_drop" / later.isoformat() / "changes.csv")
    assert len(changes) == 50 and {row["operation"] for row in changes} == {"update"}
    # the first date's run and its records are older than 3 days before the latest: deleted
    assert conn.execute("select as_of_date from activation.sync_runs").fetchall() == [(later,)]
    assert conn.execute("select count(*) from activation.sync_records").fetchone() == (50,)
