"""The webhook destination against the demo's receiver, over real HTTP on localhost: signatures,
idempotent resends, retries of 429/503/409/timeouts, 422, partial failures, and the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from trebol.activation.destinations.base import (
    Batch,
    Change,
    Connection,
    DestinationRejected,
    SyncContext,
    TransientDestinationError,
)
from trebol.activation.destinations.webhook import (
    OPTIONS,
    REQUIRED_FIELDS,
    InvalidSignature,
    WebhookDestination,
    build,
    encode_body,
    sign,
    verify_signature,
)
from trebol.demo.webhook_receiver import WebhookReceiver, main
from trebol.settings import ConfigError

SECRET = "whsec_test_7f3a9c"
OLD_SECRET = "whsec_old_2b81d4"
SYNC = "vip_webhook"
FAST = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "timeout_seconds": 2.0, "max_attempts": 6}
CONTEXT = SyncContext(SYNC, "vip", "2026-03-01", 7, {})


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    with WebhookReceiver([SECRET], tmp_path / "out") as running:
        yield running


def destination(receiver: WebhookReceiver, secret: str = SECRET, url: str | None = None,
                **options: Any) -> WebhookDestination:
    connection = Connection("webhook_test", host=url or receiver.url, password=secret)
    built = WebhookDestination("crm_webhook", connection, {**FAST, **options})
    built.open(CONTEXT)
    return built


def change(n: int, operation: str = "add", **fields: Any) -> Change:
    values = {"email": f"c{n}@example.com", "segment": "vip", "points": n * 10, **fields}
    reason = "left_audience" if operation == "remove" else None
    return Change(f"C{n}", operation, values, reason=reason)  # type: ignore[arg-type]


def batch(changes: list[Change], batch_no: int = 1, key: str | None = None) -> Batch:
    return Batch(SYNC, "vip", 7, batch_no, key or f"sync-7-batch-{batch_no}", changes)


ADDS = batch([change(n) for n in range(1, 6)])


def test_module_contract() -> None:
    assert not REQUIRED_FIELDS
    assert {"batch_size", "max_attempts", "timeout_seconds", "requests_per_second"} <= OPTIONS
    built = build("w", Connection("c", host="https://hooks.example.com/t", password="s"), {})
    assert built.batch_size == 500 and built.policy.timeout_seconds == 30.0
    largest = build("w", Connection("c", host="http://h.example/x", password="s"), {"batch_size": 10_000})
    assert largest.batch_size == 10_000


# -- signing ----------------------------------------------------------------------------------

def test_signature_matches_the_stripe_style_reference_vector() -> None:
    # campaign-apis.md §6.1: secret whsec_test, t=1700000000, body {"id":"evt_1"}
    assert sign("whsec_test", "1700000000", b'{"id":"evt_1"}') == (
        "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925")


def test_verify_accepts_a_good_signature_and_refuses_tampered_stale_or_unknown() -> None:
    body, now = b'{"records":[]}', 1_800_000_000
    good = f"v1={sign(SECRET, str(now), body)}"
    verify_signature([SECRET], str(now), good, body, now=now + 299)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature([SECRET], str(now), good, b'{"records":[{}]}', now=now)
    with pytest.raises(InvalidSignature, match="outside the 300 s window"):
        verify_signature([SECRET], str(now), good, body, now=now + 301)
    with pytest.raises(InvalidSignature, match="outside the 300 s window"):
        verify_signature([SECRET], str(now), good, body, now=now - 301)  # from the future
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(["whsec_other"], str(now), good, body, now=now)
    with pytest.raises(InvalidSignature, match="does not match"):  # timestamp is signed too
        verify_signature([SECRET], str(now + 1), good, body, now=now)
    with pytest.raises(InvalidSignature, match="missing Trebol-Signature"):
        verify_signature([SECRET], str(now), None, body, now=now)
    with pytest.raises(InvalidSignature, match="missing Trebol-Timestamp"):
        verify_signature([SECRET], "", good, body, now=now)
    with pytest.raises(InvalidSignature, match="no v1= value"):
        verify_signature([SECRET], str(now), "v0=abc", body, now=now)


def test_verify_accepts_any_of_the_rotating_secrets_and_any_offered_signature() -> None:
    body, now = b"{}", 1_800_000_000
    old = f"v1={sign(OLD_SECRET, str(now), body)}"
    new = f"v1={sign(SECRET, str(now), body)}"
    verify_signature([SECRET, OLD_SECRET], str(now), old, body, now=now)
    verify_signature([SECRET, OLD_SECRET], str(now), new, body, now=now)
    verify_signature([SECRET], str(now), f"v1=deadbeef, {new}", body, now=now)
    with pytest.raises(InvalidSignature):
        verify_signature([SECRET], str(now), old, body, now=now)


def test_body_is_the_same_bytes_whatever_the_fields_order() -> None:
    one = batch([Change("C1", "add", {"email": "a@x.es", "points": 1})])
    two = batch([Change("C1", "add", {"points": 1, "email": "a@x.es"})])
    assert encode_body(one) == encode_body(two)
    document = json.loads(encode_body(one))
    assert document == {"sync": SYNC, "audience": "vip", "batch": 1, "idempotency_key": "sync-7-batch-1",
                        "records": [{"customer_key": "C1", "operation": "add", "reason": None,
                                     "fields": {"email": "a@x.es", "points": 1}}]}


# -- delivery ---------------------------------------------------------------------------------

def test_a_batch_is_delivered_signed_and_applied(receiver: WebhookReceiver, tmp_path: Path) -> None:
    outcomes = destination(receiver).send(ADDS)
    assert [(o.customer_key, o.ok, o.error) for o in outcomes] == [(f"C{n}", True, None) for n in range(1, 6)]
    assert receiver.state(SYNC)["C3"] == {"email": "c3@example.com", "segment": "vip", "points": 30}
    [delivery] = receiver.deliveries
    assert delivery.outcome == "applied"
    assert delivery.headers["idempotency-key"] == "sync-7-batch-1"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["trebol-signature"].startswith("v1=")
    assert abs(int(delivery.headers["trebol-timestamp"]) - time.time()) < 5
    [line] = (tmp_path / "out" / f"{SYNC}.jsonl").read_text().splitlines()
    written = json.loads(line)
    assert written["idempotency_key"] == "sync-7-batch-1" and len(written["records"]) == 5
    assert written["errors"] == []


def test_updates_and_removals_change_the_receivers_state(receiver: WebhookReceiver) -> None:
    sender = destination(receiver)
    sender.send(ADDS)
    later = batch([change(1, "update", segment="gold"), change(2, "remove")], batch_no=2)
    assert all(outcome.ok for outcome in sender.send(later))
    state = receiver.state(SYNC)
    assert sorted(state) == ["C1", "C3", "C4", "C5"]
    assert state["C1"]["segment"] == "gold"
    assert len(receiver.batches(SYNC)) == 2


def test_an_erasure_is_a_delete_event_without_fields_and_the_receiver_forgets(
        receiver: WebhookReceiver, tmp_path: Path) -> None:
    sender = destination(receiver)
    sender.send(ADDS)
    erased = Change("C2", "remove", {"email": "c2@example.com", "points": 20}, reason="erased")
    body = json.loads(encode_body(batch([erased], batch_no=2)))
    assert body["records"] == [{"customer_key": "C2", "fields": {}, "operation": "remove",
                                "reason": "erased"}]
    assert all(outcome.ok for outcome in sender.send(batch([erased], batch_no=2)))
    assert sorted(receiver.state(SYNC)) == ["C1", "C3", "C4", "C5"]
    # nothing of C2 is kept: not in the batches it holds, nor in its log on disk
    assert "C2" not in json.dumps(receiver.batches())
    logged = (tmp_path / "out" / f"{SYNC}.jsonl").read_text()
    assert "C2" not in logged and "c2@example.com" not in logged and "c3@example.com" in logged


def test_extra_headers_from_the_connection_are_sent(receiver: WebhookReceiver) -> None:
    connection = Connection("webhook_test", host=receiver.url, password=SECRET,
                            extra={"headers": {"X-Gateway-Key": "gw-123"}})
    WebhookDestination("crm_webhook", connection, FAST).send(ADDS)
    assert receiver.deliveries[0].headers["x-gateway-key"] == "gw-123"


def test_the_receiver_refuses_bad_missing_and_stale_signatures_with_401(receiver: WebhookReceiver) -> None:
    body = encode_body(ADDS)
    now = str(int(time.time()))
    stale = str(int(time.time()) - 301)
    cases = {
        "tampered": {"Trebol-Timestamp": now, "Trebol-Signature": f"v1={sign(SECRET, now, body + b' ')}"},
        "missing": {"Trebol-Timestamp": now},
        "stale": {"Trebol-Timestamp": stale, "Trebol-Signature": f"v1={sign(SECRET, stale, body)}"},
        "other secret": {"Trebol-Timestamp": now, "Trebol-Signature": f"v1={sign('nope', now, body)}"},
    }
    for name, headers in cases.items():
        response = httpx.post(receiver.url, content=body, headers={**headers, "Idempotency-Key": "k"})
        assert response.status_code == 401, name
        assert response.json()["error"], name
        assert SECRET not in response.text
    assert receiver.unauthorized == 4
    assert receiver.state(SYNC) == {} and receiver.batches() == []


def test_a_stale_clock_is_a_rejection_not_a_retry(tmp_path: Path) -> None:
    with WebhookReceiver([SECRET], clock=lambda: time.time() + 301) as skewed:
        with pytest.raises(DestinationRejected, match=r"401 .*outside the 300 s window"):
            destination(skewed).send(ADDS)
        assert skewed.unauthorized == 1  # not retried


def test_a_rotated_secret_is_accepted_while_the_receiver_holds_both(receiver: WebhookReceiver) -> None:
    receiver.set_secrets([SECRET, OLD_SECRET])
    assert all(o.ok for o in destination(receiver, secret=OLD_SECRET).send(ADDS))
    assert all(o.ok for o in destination(receiver, secret=SECRET).send(batch([change(9)], batch_no=2)))
    receiver.set_secrets([SECRET])  # rotation over: the old secret no longer signs
    with pytest.raises(DestinationRejected, match="401"):
        destination(receiver, secret=OLD_SECRET).send(batch([change(10)], batch_no=3))
    assert sorted(receiver.state(SYNC)) == ["C1", "C2", "C3", "C4", "C5", "C9"]


# -- idempotency and retries ------------------------------------------------------------------

def test_a_lost_response_is_retried_and_replayed_not_applied_twice(receiver: WebhookReceiver) -> None:
    receiver.lose_next_response()
    outcomes = destination(receiver).send(ADDS)
    assert all(outcome.ok for outcome in outcomes)
    assert [d.outcome for d in receiver.deliveries] == ["lost", "replayed"]
    assert len(receiver.batches()) == 1 and receiver.replays == 1
    assert len(receiver.state(SYNC)) == 5


def test_resending_a_batch_after_a_crash_leaves_the_same_state(receiver: WebhookReceiver,
                                                               tmp_path: Path) -> None:
    destination(receiver).send(ADDS)
    before = receiver.state(SYNC)
    assert all(o.ok for o in destination(receiver).send(ADDS))  # a new run, same key, same bytes
    assert receiver.state(SYNC) == before
    assert len(receiver.batches()) == 1 and receiver.replays == 1
    assert len((tmp_path / "out" / f"{SYNC}.jsonl").read_text().splitlines()) == 1


def test_a_storm_of_503_and_429_with_retry_after_ends_in_the_clean_state(receiver: WebhookReceiver) -> None:
    waits: list[float] = []
    connection = Connection("webhook_test", host=receiver.url, password=SECRET)
    sender = WebhookDestination("crm_webhook", connection, {**FAST, "max_backoff_seconds": 30},
                                sleep=waits.append)
    receiver.fail_next(2, status=503, retry_after=7)
    receiver.fail_next(1, status=429, retry_after=3)
    assert all(o.ok for o in sender.send(ADDS))
    assert waits == [7, 7, 3]  # Retry-After honoured (the sleep is recorded, not slept)
    with WebhookReceiver([SECRET]) as clean:
        destination(clean).send(ADDS)
        assert receiver.state(SYNC) == clean.state(SYNC)
    assert len(receiver.batches()) == 1


def test_retries_that_run_out_raise_a_transient_error_naming_the_connection(tmp_path: Path) -> None:
    with WebhookReceiver([SECRET]) as receiver:
        receiver.fail_next(5, status=503)
        url = receiver.url.replace("/hooks/trebol", "/hooks/T0SECRETPATH")
        with pytest.raises(TransientDestinationError) as raised:
            destination(receiver, url=url, max_attempts=3).send(ADDS)
        message = str(raised.value)
        assert "crm_webhook: POST (connection webhook_test): 503" in message
        assert "after 3 attempts" in message and "\n" not in message
        assert "T0SECRETPATH" not in message and SECRET not in message
        assert receiver.count("injected") == 3 and receiver.batches() == []


def test_the_same_key_with_another_body_is_rejected_with_422(receiver: WebhookReceiver) -> None:
    sender = destination(receiver)
    sender.send(ADDS)
    other = batch([change(1, "update", segment="gold")], key=ADDS.idempotency_key)
    with pytest.raises(DestinationRejected, match="422 Idempotency-Key was already used with another body"):
        sender.send(other)
    assert receiver.conflicts == 1 and len(receiver.batches()) == 1
    assert receiver.state(SYNC)["C1"]["segment"] == "vip"


def test_per_record_errors_in_a_2xx_become_failed_outcomes(receiver: WebhookReceiver) -> None:
    receiver.reject_records(["C2", "C4"], "email bounced")
    outcomes = {o.customer_key: o for o in destination(receiver).send(ADDS)}
    assert not outcomes["C2"].ok and outcomes["C2"].error == "email bounced"
    assert not outcomes["C4"].ok
    assert all(outcomes[key].ok and outcomes[key].error is None for key in ("C1", "C3", "C5"))
    assert sorted(receiver.state(SYNC)) == ["C1", "C3", "C5"]


def test_a_receiver_that_cannot_store_a_batch_changes_nothing_and_accepts_the_resend(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with WebhookReceiver([SECRET], blocked) as receiver:
        with pytest.raises(TransientDestinationError, match="500 could not apply the batch"):
            destination(receiver, max_attempts=2).send(ADDS)
        assert receiver.state(SYNC) == {} and receiver.batches() == [] and receiver.count("error") == 2
        receiver.out_dir = tmp_path / "out"  # the disk is fixed; the next run resends
        assert all(o.ok for o in destination(receiver).send(ADDS))
        assert len(receiver.state(SYNC)) == 5 and receiver.replays == 0
        assert len((tmp_path / "out" / f"{SYNC}.jsonl").read_text().splitlines()) == 1


def test_a_hanging_receiver_times_out_and_the_retry_waits_for_the_first_request(
        receiver: WebhookReceiver) -> None:
    receiver.hang_next(seconds=1.0)
    sender = destination(receiver, timeout_seconds=0.3, backoff_seconds=0.1, max_backoff_seconds=0.3,
                         max_attempts=12)
    assert all(o.ok for o in sender.send(ADDS))
    outcomes = [d.outcome for d in receiver.deliveries]
    assert outcomes.count("applied") == 1 and outcomes[-1] == "replayed"
    assert receiver.in_flight_refusals >= 1  # 409 while the first request hung, then retried
    assert len(receiver.batches()) == 1 and len(receiver.state(SYNC)) == 5


def test_a_hang_longer_than_the_retries_is_transient_and_the_next_run_converges(
        receiver: WebhookReceiver) -> None:
    receiver.hang_next(seconds=0.8)
    with pytest.raises(TransientDestinationError, match="Timeout"):
        destination(receiver, timeout_seconds=0.2, max_attempts=1).send(ADDS)
    deadline = time.monotonic() + 5
    while not receiver.batches() and time.monotonic() < deadline:  # the first request completes
        time.sleep(0.05)
    assert all(o.ok for o in destination(receiver).send(ADDS))
    assert receiver.replays == 1 and len(receiver.batches()) == 1


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize(("connection", "message"), [
    (Connection("c", host="h.example/x", password="s"), "host must be the receiver's http"),
    (Connection("c", host="https://h.example/x", password=""), "password .* is empty"),
    (Connection("c", host="https://h.example/x", password="s", extra={"headers": {"Idempotency-Key": "x"}}),
     "extra.headers may not set Idempotency-Key"),
    (Connection("c", host="https://h.example/x", password="s", extra={"headers": ["x"]}),
     "extra.headers must map"),
])
def test_bad_connections_are_config_errors(connection: Connection, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build("crm_webhook", connection, {})


def test_the_receiver_never_logs_the_secret(receiver: WebhookReceiver,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.lose_next_response()
    destination(receiver).send(ADDS)
    httpx.post(receiver.url, content=b"{}", headers={"Trebol-Timestamp": "1", "Trebol-Signature": "v1=00"})
    assert caplog.records  # it does log requests
    assert SECRET not in caplog.text


def test_the_receiver_runs_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "HOOK_SECRET": SECRET, "HOOK_OLD": OLD_SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "trebol.demo.webhook_receiver", "--port", "0", "--secret-env", "HOOK_SECRET",
         "--secret-env", "HOOK_OLD", "--out", str(tmp_path / "cli")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.split("listening on ")[1].split()[0]
        assert httpx.get(url.replace("/hooks/trebol", "/health")).json() == {"ok": True}
        sender = WebhookDestination("crm_webhook", Connection("c", host=url, password=OLD_SECRET), FAST)
        assert all(o.ok for o in sender.send(ADDS))
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    lines = (tmp_path / "cli" / f"{SYNC}.jsonl").read_text().splitlines()
    assert [json.loads(line)["batch"] for line in lines] == [1]
    assert SECRET not in first + out + err and OLD_SECRET not in first + out + err


def test_the_command_line_refuses_a_missing_secret_variable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET_VAR", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", "--secret-env", "NO_SUCH_SECRET_VAR", "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert "environment variable NO_SUCH_SECRET_VAR is not set" in capsys.readouterr().err
