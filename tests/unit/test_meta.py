"""The Meta Custom Audiences destination against the fake Graph API over real HTTP: hashed
multi-key rows, adds and removes, updates, throttling retries, 10,000-row calls, invalid entries
and a bad token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.meta import FakeMeta
from trebol.activation.destinations.base import (
    Batch,
    Change,
    Connection,
    DestinationRejected,
    SyncContext,
    TransientDestinationError,
)
from trebol.activation.destinations.meta import (
    OPTIONS,
    REQUIRED_ANY,
    REQUIRED_FIELDS,
    MetaCustomAudience,
    build,
    hashed_row,
)
from trebol.activation.hashing import sha256_hex
from trebol.settings import ConfigError

TOKEN = "EAAB-test-token-9f8e7d"
AUDIENCE = "23850000000000001"
FAST = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.02, "timeout_seconds": 5.0, "max_attempts": 5}
CONTEXT = SyncContext("vip_meta", "vip", "2026-03-01", 7, {})


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    with FakeMeta(token=TOKEN, audiences=[AUDIENCE]) as running:
        yield running


def destination(fake: FakeMeta, token: str = TOKEN, audience: str = AUDIENCE, sleep: Any = None,
                **options: Any) -> MetaCustomAudience:
    connection = Connection("meta_ads", host=fake.base_url, password=token, extra={"audience_id": audience})
    extra = {"sleep": sleep} if sleep else {}
    built = MetaCustomAudience("meta_vip", connection, {**FAST, **options}, **extra)
    built.open(CONTEXT)
    return built


def fields(n: int, **overrides: Any) -> dict[str, Any]:
    return {"EMAIL": f"  Customer{n}@Example.COM ", "PHONE": f"+34 600 {n:06d}", **overrides}


def row(n: int) -> tuple[str, str]:
    return (sha256_hex(f"customer{n}@example.com"), sha256_hex(f"34600{n:06d}"))


def batch(changes: list[Change], batch_no: int = 1) -> Batch:
    return Batch("vip_meta", "vip", 7, batch_no, f"sync-7-batch-{batch_no}", changes)


def adds(*numbers: int) -> Batch:
    return batch([Change(f"C{n}", "add", fields(n)) for n in numbers])


def test_module_contract() -> None:
    assert {"EMAIL", "PHONE"} == REQUIRED_ANY and not REQUIRED_FIELDS
    assert {"batch_size", "max_attempts", "backoff_seconds"} <= OPTIONS
    connection = Connection("m", host="https://graph.facebook.com/v19.0", password="t0ken",
                            extra={"audience_id": 23850000000000001})
    built = build("meta_vip", connection, {})
    assert built.batch_size == 10_000 and built.audience_id == "23850000000000001"


def test_rows_are_the_hashes_of_the_normalised_email_and_phone() -> None:
    assert hashed_row({"EMAIL": " Jane.Doe@Gmail.com", "PHONE": "+1 (800) 555-0100"}) == (
        "831f6494ad6be4fcb3a724c3d5fef22d3ceffa3c62ef3a7984e45a0ea177f982",  # campaign-apis.md §5.3
        "92cfdc5fbcd4a20fbe5d3857af6c1aba31762105bba7f21a17155e920653046c")
    assert hashed_row({"EMAIL": "a@b.es", "PHONE": None}) == (sha256_hex("a@b.es"), "")
    assert hashed_row({"EMAIL": "", "PHONE": "  "}) == ("", "")


def test_adds_put_the_hashed_rows_in_the_audience(fake: FakeMeta) -> None:
    outcomes = destination(fake).send(adds(1, 2, 3))
    assert [(o.customer_key, o.ok) for o in outcomes] == [("C1", True), ("C2", True), ("C3", True)]
    assert fake.members(AUDIENCE) == {row(1), row(2), row(3)}
    [request] = fake.requests
    assert (request.method, request.audience_id, request.status) == ("POST", AUDIENCE, 200)
    assert len(request.rows) == 3


def test_removals_delete_the_rows_last_synced(fake: FakeMeta) -> None:
    sender = destination(fake)
    sender.send(adds(1, 2, 3))
    later = batch([Change("C2", "remove", fields(2), reason="consent_withdrawn")], batch_no=2)
    assert [o.ok for o in sender.send(later)] == [True]
    assert fake.members(AUDIENCE) == {row(1), row(3)}
    assert [r.method for r in fake.requests] == ["POST", "DELETE"]


def test_an_update_that_changes_a_phone_swaps_the_row_and_others_send_nothing(fake: FakeMeta) -> None:
    sender = destination(fake)
    sender.send(adds(1, 2))
    changes = [
        Change("C1", "update", fields(1, PHONE="+34 699 000 001"), previous=fields(1)),
        Change("C2", "update", fields(2, EMAIL="customer2@example.com", points=5), previous=fields(2)),
    ]
    assert all(o.ok for o in sender.send(batch(changes, batch_no=2)))
    assert fake.members(AUDIENCE) == {(row(1)[0], sha256_hex("34699000001")), row(2)}
    assert [(r.method, len(r.rows)) for r in fake.requests[1:]] == [("DELETE", 1), ("POST", 1)]


def test_a_customer_without_email_or_phone_is_a_failed_record(fake: FakeMeta) -> None:
    changes = [Change("C1", "add", {"EMAIL": None, "PHONE": ""}),
               Change("C2", "add", {"EMAIL": "only@mail.es"}),
               Change("C3", "remove", {"EMAIL": None})]
    outcomes = destination(fake).send(batch(changes))
    assert [(o.ok, o.error) for o in outcomes] == [
        (False, "no EMAIL or PHONE to match on"), (True, None), (True, None)]
    assert fake.members(AUDIENCE) == {(sha256_hex("only@mail.es"), "")}
    assert [r.method for r in fake.requests] == ["POST"]  # nothing to remove for C3


def test_resending_a_batch_leaves_the_same_audience(fake: FakeMeta) -> None:
    destination(fake).send(adds(1, 2))
    destination(fake).send(adds(1, 2))
    assert fake.members(AUDIENCE) == {row(1), row(2)}


def test_throttling_codes_in_a_400_are_retried_with_backoff(fake: FakeMeta) -> None:
    waits: list[float] = []
    fake.throttle_next(2, code=17)
    fake.throttle_next(1, code=613)
    fake.fail_next(1, status=503)
    assert all(o.ok for o in destination(fake, sleep=waits.append).send(adds(1)))
    assert [(r.status, r.code) for r in fake.requests] == [
        (400, 17), (400, 17), (400, 613), (503, 2), (200, None)]
    assert len(waits) == 4 and all(0 <= wait <= FAST["max_backoff_seconds"] for wait in waits)
    assert fake.members(AUDIENCE) == {row(1)}


def test_throttling_that_outlasts_the_retries_is_transient(fake: FakeMeta) -> None:
    fake.throttle_next(10, code=80003)
    with pytest.raises(TransientDestinationError, match=r"\(code 80003\).*after 3 attempts"):
        destination(fake, max_attempts=3).send(adds(1))
    assert fake.members(AUDIENCE) == set()


def test_more_rows_than_a_call_takes_are_split(fake: FakeMeta) -> None:
    big = batch([Change(f"C{n}", "add", {"EMAIL": f"c{n}@x.es"}) for n in range(10_001)])
    outcomes = destination(fake).send(big)
    assert len(outcomes) == 10_001 and all(o.ok for o in outcomes)
    assert [len(r.rows) for r in fake.requests] == [10_000, 1]
    assert len(fake.members(AUDIENCE)) == 10_001


def test_batch_size_option_caps_rows_per_call(fake: FakeMeta) -> None:
    sender = destination(fake, batch_size=2)
    assert sender.batch_size == 2
    sender.send(adds(1, 2, 3, 4, 5))
    assert [len(r.rows) for r in fake.requests] == [2, 2, 1]


def test_the_fake_refuses_more_than_10000_rows_with_code_100(fake: FakeMeta) -> None:
    payload = json.dumps({"schema": ["EMAIL"], "data": [["a" * 64]] * 10_001})
    response = httpx.post(f"{fake.base_url}/{AUDIENCE}/users",
                          data={"payload": payload, "access_token": TOKEN})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


def test_the_fake_counts_unhashed_values_invalid_and_names_them(fake: FakeMeta) -> None:
    data = [["raw@mail.es", ""], ["b" * 64, ""], ["", ""]]
    payload = json.dumps({"schema": ["EMAIL", "PHONE"], "data": data})
    answer = httpx.post(f"{fake.base_url}/{AUDIENCE}/users",
                        data={"payload": payload, "access_token": TOKEN}).json()
    assert (answer["num_received"], answer["num_invalid_entries"]) == (3, 2)
    assert answer["invalid_entry_samples"] == {"raw@mail.es": "EMAIL"}
    assert fake.members(AUDIENCE) == {("b" * 64, "")}


def test_entries_meta_names_invalid_are_failed_records(fake: FakeMeta) -> None:
    fake.mark_invalid({row(2)[1]})
    outcomes = {o.customer_key: o for o in destination(fake).send(adds(1, 2, 3))}
    assert not outcomes["C2"].ok and outcomes["C2"].error == "Meta counted this row invalid"
    assert outcomes["C1"].ok and outcomes["C3"].ok
    assert fake.members(AUDIENCE) == {row(1), row(3)}


def test_invalid_entries_meta_does_not_name_fail_the_whole_call() -> None:
    with FakeMeta(token=TOKEN, audiences=[AUDIENCE], sample_limit=1) as fake:
        fake.mark_invalid({row(2)[0], row(3)[0]})
        sender = destination(fake, batch_size=3)
        outcomes = {o.customer_key: o for o in sender.send(adds(1, 2, 3, 4))}
    assert outcomes["C2"].error == "Meta counted this row invalid"  # the one sample
    for key in ("C1", "C3"):  # same call, can't be told apart: resent next run
        assert not outcomes[key].ok
        assert "Meta reported 2 invalid of 3 received rows (of 3 sent) without naming them all" in (
            outcomes[key].error or "")
    assert outcomes["C4"].ok  # the second call was clean


def test_a_bad_token_is_rejected_once_without_the_token_in_the_message(fake: FakeMeta) -> None:
    wrong = "EAAB-wrong-token-1234"
    with pytest.raises(DestinationRejected) as raised:
        destination(fake, token=wrong).send(adds(1))
    message = str(raised.value)
    assert "meta_vip: POST /23850000000000001/users: 400 Invalid OAuth access token" in message
    assert "(code 190)" in message and wrong not in message and TOKEN not in message
    assert [(r.status, r.code) for r in fake.requests] == [(400, 190)]  # not retried


def test_an_unknown_audience_is_rejected(fake: FakeMeta) -> None:
    with pytest.raises(DestinationRejected, match=r"400 .*does not exist \(code 100\)"):
        destination(fake, audience="999").send(adds(1))


@pytest.mark.parametrize(("connection", "message"), [
    (Connection("m", host="graph.facebook.com", password="t", extra={"audience_id": "1"}), "host must be"),
    (Connection("m", host="https://graph.facebook.com/v19.0", password="", extra={"audience_id": "1"}),
     "password .* is empty"),
    (Connection("m", host="https://graph.facebook.com/v19.0", password="t"), "extra.audience_id must be"),
    (Connection("m", host="https://graph.facebook.com/v19.0", password="t", extra={"audience_id": "act_1"}),
     "extra.audience_id must be"),
])
def test_bad_connections_are_config_errors(connection: Connection, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build("meta_vip", connection, {})
