"""The Mailchimp destination and consent feedback against the fake Mailchimp API (a real HTTP
server, tests/fakes/mailchimp.py), and the fake's own fidelity to campaign-apis.md §1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from airflow.sdk.exceptions import AirflowFailException

from trebol.activation.consent_feedback import export_mailchimp_opt_outs
from trebol.activation.destinations.base import (
    Batch,
    Change,
    Connection,
    DestinationRejected,
    SyncContext,
    TransientDestinationError,
)
from trebol.activation.destinations.mailchimp import (
    OPTIONS,
    REQUIRED_FIELDS,
    MailchimpDestination,
    api_base_url,
    build,
)
from trebol.activation.http import HttpTransport, RetryPolicy, _TokenBucket
from trebol.airflow import tasks
from trebol.extract import load
from trebol.extract.sources import load_sources
from trebol.interval import Interval
from trebol.settings import ConfigError

from ..fakes.mailchimp import FakeMailchimp, subscriber_hash
from ..helpers import use_mailchimp_destination

KEY = "0123456789abcdef0123456789abcdef-us21"
LIST = "a1b2c3d4e5"
SUBSCRIBE = "POST /lists/{list_id}"
SEGMENT_BATCH = "POST /lists/{list_id}/segments/{segment_id}"
SEGMENT_CREATE = "POST /lists/{list_id}/segments"
SEGMENT_LIST = "GET /lists/{list_id}/segments"
MERGE_FIELDS = {"FNAME": "text", "OFFER": "text", "POINTS": "number"}


def _started_fake(**kwargs: Any) -> FakeMailchimp:
    server = FakeMailchimp(api_key=KEY, **kwargs).start()
    server.add_list(LIST, merge_fields=MERGE_FIELDS)
    return server


@pytest.fixture
def fake() -> Iterator[FakeMailchimp]:
    server = _started_fake()
    yield server
    server.stop()


def _destination(fake: FakeMailchimp, sleeps: list[float] | None = None,
                 key: str = KEY, **options: Any) -> MailchimpDestination:
    connection = Connection("mailchimp_default", fake.base_url, password=key,
                            extra={"list_id": LIST})
    options = {"backoff_seconds": 0.001, "max_backoff_seconds": 0.01, **options}
    return MailchimpDestination("crm_mailchimp", connection, options,
                                sleep=sleeps.append if sleeps is not None else lambda _: None)


def _context(audience: str = "vip") -> SyncContext:
    return SyncContext(f"{audience}_to_mailchimp", audience, "2026-03-01", 7, {})


def _batch(changes: list[Change], number: int = 1, audience: str = "vip") -> Batch:
    return Batch(f"{audience}_to_mailchimp", audience, 7, number, f"7-{number}", changes)


def _add(key: str, email: str, **merge: Any) -> Change:
    return Change(key, "add", {"email_address": email, **merge})


def _state(fake: FakeMailchimp, tag: str = "vip") -> tuple[dict[str, Any], set[str]]:
    members = {m["email_address"]: (m["status"], m["merge_fields"]) for m in fake.members(LIST)}
    return members, fake.segment_emails(LIST, tag)


def _client(fake: FakeMailchimp, key: str | None = KEY) -> httpx.Client:
    return httpx.Client(base_url=fake.base_url, auth=("anyone", key) if key else None)


# ---- the fake ---------------------------------------------------------------------------------


def test_fake_auth_ping_and_problem_json(fake: FakeMailchimp) -> None:
    with _client(fake, key=None) as anonymous, _client(fake, key="wrong-us21") as wrong, \
            _client(fake) as client:
        missing, invalid = anonymous.get("/ping"), wrong.get("/ping")
        assert (missing.status_code, missing.json()["title"]) == (401, "API Key Missing")
        assert (invalid.status_code, invalid.json()["title"]) == (401, "API Key Invalid")
        assert invalid.headers["Content-Type"] == "application/problem+json"
        assert set(invalid.json()) == {"type", "title", "status", "detail", "instance"}
        assert invalid.headers["X-Request-Id"]
        assert client.get("/ping").json() == {"health_status": "Everything's Chimpy!"}
        unknown = client.get("/lists/nope/members")
        assert (unknown.status_code, unknown.json()["title"]) == (404, "Resource Not Found")
        assert client.get(f"/lists/{LIST}/members/{'0' * 32}").status_code == 404
        assert client.delete(f"/lists/{LIST}/segments").status_code == 405


def test_fake_member_id_is_md5_of_the_trimmed_lower_cased_address(fake: FakeMailchimp) -> None:
    with _client(fake) as client:
        body = {"members": [{"email_address": " Urist.McVankab@freddiesjokes.com ",
                             "status": "subscribed"}]}
        created = client.post(f"/lists/{LIST}", json=body).json()["new_members"][0]
        assert created["id"] == "62eeb292278cc15f5817cb78f7790b08"  # the doc's vector
        again = client.get(f"/lists/{LIST}/members/62eeb292278cc15f5817cb78f7790b08").json()
        assert again["email_address"] == "Urist.McVankab@freddiesjokes.com"


def test_fake_batch_subscribe_rules(fake: FakeMailchimp) -> None:
    fake.add_member(LIST, "gone@example.com", "unsubscribed", {"FNAME": "Old"})
    fake.add_member(LIST, "here@example.com", "subscribed")
    with _client(fake) as client:
        too_many = [{"email_address": f"p{i}@example.com", "status": "subscribed"} for i in range(501)]
        refused = client.post(f"/lists/{LIST}", json={"members": too_many})
        assert (refused.status_code, refused.json()["title"]) == (400, "Invalid Resource")
        assert fake.member(LIST, "p0@example.com") is None  # nothing of a refused call applies

        result = client.post(f"/lists/{LIST}", json={"members": [
            {"email_address": "here@example.com", "status": "subscribed"},
            {"email_address": "new@example.com", "status": "subscribed", "merge_fields": {"COLOR": "red"}},
            {"email_address": "ok@example.com", "status": "subscribed", "merge_fields": {"POINTS": "12"}},
            {"email_address": "OK@example.com", "status": "subscribed"},
        ]}).json()
        assert result["total_created"] == 1 and result["error_count"] == 3
        errors = {e["email_address"]: e for e in result["errors"]}
        assert errors["here@example.com"]["error_code"] == "ERROR_CONTACT_EXISTS"
        assert errors["new@example.com"]["field"] == "COLOR"
        assert "OK@example.com" in errors  # the same address twice in one request
        assert fake.member(LIST, "new@example.com") is None
        assert fake.member(LIST, "ok@example.com")["merge_fields"]["POINTS"] == 12

        compliance = client.post(f"/lists/{LIST}", json={"update_existing": True, "members": [
            {"email_address": "gone@example.com", "status": "subscribed", "merge_fields": {"FNAME": "New"}}]})
        assert compliance.status_code == 200
        error = compliance.json()["errors"][0]
        assert error["field_message"] == "Member In Compliance State"
        assert fake.member(LIST, "gone@example.com")["status"] == "unsubscribed"
        assert fake.member(LIST, "gone@example.com")["merge_fields"]["FNAME"] == "Old"
        patched = client.patch(f"/lists/{LIST}/members/{subscriber_hash('gone@example.com')}",
                               json={"status": "subscribed"})
        assert (patched.status_code, patched.json()["title"]) == (400, "Member In Compliance State")


def test_fake_segment_batch_rules(fake: FakeMailchimp) -> None:
    fake.add_member(LIST, "a@example.com")
    segment = fake.add_segment(LIST, "vip")
    with _client(fake) as client:
        path = f"/lists/{LIST}/segments/{segment}"
        over = client.post(path, json={"members_to_add": [f"x{i}@example.com" for i in range(501)]})
        assert over.status_code == 400 and "at most 500" in over.json()["detail"]
        result = client.post(path, json={"members_to_add": ["a@example.com", "stranger@example.com"]}).json()
        assert (result["total_added"], result["error_count"]) == (1, 1)
        assert result["errors"][0]["email_addresses"] == ["stranger@example.com"]
        assert fake.member(LIST, "stranger@example.com") is None  # never created
        again = client.post(path, json={"members_to_add": ["a@example.com"]}).json()
        assert again["total_added"] == 0 and again["error_count"] == 0  # a set: no duplicate
        assert fake.segment_emails(LIST, "vip") == {"a@example.com"}
        listed = client.get(f"{path}/members", params={"fields": "members.email_address,total_items"})
        assert listed.json() == {"members": [{"email_address": "a@example.com"}], "total_items": 1}
        saved = client.post(f"/lists/{LIST}/segments", json={"name": "vip", "static_segment": []})
        assert saved.status_code == 400  # tag names are unique on an audience


def test_fake_paging_filters_and_fields(fake: FakeMailchimp) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(25):
        fake.add_member(LIST, f"m{i:02}@example.com", "unsubscribed" if i % 5 == 0 else "subscribed",
                        last_changed=start + timedelta(hours=i))
    with _client(fake) as client:
        path = f"/lists/{LIST}/members"
        first = client.get(path).json()
        assert (len(first["members"]), first["total_items"]) == (10, 25)  # count defaults to 10
        last = client.get(path, params={"offset": 20, "count": 10}).json()
        assert [m["email_address"] for m in last["members"]] == [
            f"m{i}@example.com" for i in range(20, 25)]
        unsubscribed = client.get(path, params={"status": "unsubscribed", "count": 1000}).json()
        assert unsubscribed["total_items"] == 5
        recent = client.get(path, params={"since_last_changed": (start + timedelta(hours=20)).isoformat()})
        assert recent.json()["total_items"] == 5
        slim = client.get(path, params={"count": 1, "fields": "members.email_address,total_items"}).json()
        assert slim == {"members": [{"email_address": "m00@example.com"}], "total_items": 25}
        assert client.get(path, params={"count": 1001}).status_code == 400


def test_fake_concurrency_cap_answers_429() -> None:
    server = _started_fake(max_connections=2, latency=0.6)
    statuses: list[int] = []
    barrier = threading.Barrier(3)

    def ping() -> None:
        with _client(server) as client:
            barrier.wait()
            statuses.append(client.get("/ping").status_code)

    threads = [threading.Thread(target=ping) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    assert sorted(statuses) == [200, 200, 429]
    throttled = [r for r in server.requests if r.status == 429]
    assert throttled[0].fault == "throttled"


def test_fake_lost_response_is_applied(fake: FakeMailchimp) -> None:
    fake.lose_next_response(1, endpoint=SUBSCRIBE)
    with _client(fake) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(f"/lists/{LIST}", json={"members": [
            {"email_address": "a@example.com", "status": "subscribed"}]})
    assert fake.member(LIST, "a@example.com")["status"] == "subscribed"
    assert fake.count(SUBSCRIBE, fault="lost") == 1


# ---- the destination: its tag -----------------------------------------------------------------


def test_open_finds_the_tag_past_the_first_page(fake: FakeMailchimp) -> None:
    fake.add_segment(LIST, "vip", type="saved")  # a saved segment is not the tag
    for i in range(1004):
        fake.add_segment(LIST, f"campaign {i}")
    tag = fake.add_segment(LIST, "vip")
    destination = _destination(fake)
    destination.open(_context())
    destination.send(_batch([_add("c1", "a@example.com")]))
    assert fake.count(SEGMENT_CREATE) == 0
    pages = fake.calls(SEGMENT_LIST)
    assert [(p.query["count"], p.query["offset"], p.query["type"]) for p in pages] == [
        ("1000", "0", "static"), ("1000", "1000", "static")]
    assert fake.calls(SEGMENT_BATCH)[0].path.endswith(f"/segments/{tag}")
    assert fake.segment_emails(LIST, "vip") == {"a@example.com"}


def test_open_creates_the_tag_once(fake: FakeMailchimp) -> None:
    for _ in range(2):  # two runs
        destination = _destination(fake, segment_name="trebol {audience}")
        destination.open(_context())
        destination.close(_context(), iter(()))
    assert [s["name"] for s in fake.segments(LIST)] == ["trebol vip"]
    assert fake.count(SEGMENT_CREATE) == 1
    assert fake.calls(SEGMENT_CREATE)[0].body == {"name": "trebol vip", "static_segment": []}


def test_open_after_the_create_response_was_lost(fake: FakeMailchimp) -> None:
    fake.lose_next_response(1, endpoint=SEGMENT_CREATE)
    _destination(fake).open(_context())
    assert [s["name"] for s in fake.segments(LIST)] == ["vip"]  # the retry made no second tag
    assert fake.count(SEGMENT_CREATE, fault="lost") == 1


# ---- the destination: sends -------------------------------------------------------------------


def test_1200_adds_go_in_calls_of_at_most_500(fake: FakeMailchimp) -> None:
    destination = _destination(fake)
    destination.open(_context())
    changes = [_add(f"c{i}", f"person{i}@example.com", FNAME=f"Name {i}", POINTS=i)
               for i in range(1200)]
    outcomes = []
    for number, start in enumerate(range(0, len(changes), destination.batch_size), 1):
        outcomes += destination.send(_batch(changes[start:start + destination.batch_size], number))
    assert destination.batch_size == 500
    assert all(o.ok for o in outcomes) and len(outcomes) == 1200
    subscribe_calls = fake.calls(SUBSCRIBE)
    assert [len(call.body["members"]) for call in subscribe_calls] == [500, 500, 200]
    assert all(call.body["update_existing"] is True for call in subscribe_calls)
    assert [len(call.body["members_to_add"]) for call in fake.calls(SEGMENT_BATCH)] == [500, 500, 200]
    members, tagged = _state(fake)
    assert len(members) == 1200 and len(tagged) == 1200
    assert members["person1199@example.com"] == ("subscribed", {"FNAME": "Name 1199", "OFFER": "",
                                                                "POINTS": 1199})


def test_one_send_of_more_than_500_is_split(fake: FakeMailchimp) -> None:
    destination = _destination(fake)
    outcomes = destination.send(_batch([_add(f"c{i}", f"p{i}@example.com") for i in range(501)]))
    assert all(o.ok for o in outcomes)
    assert [len(call.body["members"]) for call in fake.calls(SUBSCRIBE)] == [500, 1]
    assert len(fake.segment_emails(LIST, "vip")) == 501


def test_update_changes_merge_fields(fake: FakeMailchimp) -> None:
    destination = _destination(fake)
    destination.send(_batch([_add("c1", "ann@example.com", FNAME="Ann", OFFER="10%")]))
    update = Change("c1", "update", {"email_address": "ann@example.com", "FNAME": "Ann",
                                     "OFFER": "20%"},
                    previous={"email_address": "ann@example.com", "FNAME": "Ann", "OFFER": "10%"})
    assert destination.send(_batch([update], 2))[0].ok
    members, tagged = _state(fake)
    assert members == {"ann@example.com": ("subscribed", {"FNAME": "Ann", "OFFER": "20%", "POINTS": ""})}
    assert tagged == {"ann@example.com"}


def test_update_with_a_new_address_moves_the_tag(fake: FakeMailchimp) -> None:
    destination = _destination(fake)
    destination.send(_batch([_add("c1", "old@example.com", FNAME="Bo")]))
    update = Change("c1", "update", {"email_address": "new@example.com", "FNAME": "Bo"},
                    previous={"email_address": "old@example.com", "FNAME": "Bo"})
    assert destination.send(_batch([update], 2))[0].ok
    members, tagged = _state(fake)
    assert tagged == {"new@example.com"}
    assert members["new@example.com"] == ("subscribed", {"FNAME": "Bo", "OFFER": "", "POINTS": ""})
    assert members["old@example.com"][0] == "subscribed"  # left the tag, not deleted


def test_removal_leaves_the_tag_only(fake: FakeMailchimp) -> None:
    destination = _destination(fake)
    destination.send(_batch([_add("c1", "a@example.com"), _add("c2", "b@example.com")]))
    removal = Change("c1", "remove", {"email_address": "a@example.com"}, reason="left_audience")
    assert destination.send(_batch([removal], 2))[0].ok
    members, tagged = _state(fake)
    assert tagged == {"b@example.com"}
    assert members["a@example.com"][0] == "subscribed"
    assert fake.count("PATCH /lists/{list_id}/members/{subscriber_hash}") == 0


def test_an_erased_person_is_deleted_for_good_and_cannot_be_imported_again(
        fake: FakeMailchimp) -> None:
    destination = _destination(fake)
    destination.send(_batch([_add("c1", "a@example.com", FNAME="Al"), _add("c2", "b@example.com")]))
    erased = [Change("c1", "remove", {"email_address": "a@example.com"}, reason="erased"),
              Change("c3", "remove", {"email_address": "never@example.com"}, reason="erased")]
    assert all(o.ok for o in destination.send(_batch(erased, 2)))  # not on the list: 404, fine
    assert fake.member(LIST, "a@example.com") is None and fake.was_erased(LIST, "a@example.com")
    assert fake.segment_emails(LIST, "vip") == {"b@example.com"}
    assert fake.count("POST /lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
                      status=204) == 1
    assert fake.count(SEGMENT_BATCH) == 1  # no untagging of a deleted contact
    # Mailchimp refuses to import the address again: the record fails, nothing is created
    [again] = destination.send(_batch([_add("c1", "A@example.com")], 3))
    assert not again.ok and "permanently deleted" in again.error
    assert fake.member(LIST, "a@example.com") is None
    with _client(fake) as client:  # the fake's endpoint itself: 204, then 404
        path = f"/lists/{LIST}/members/{subscriber_hash('b@example.com')}/actions/delete-permanent"
        first, second = client.post(path), client.post(path)
    assert (first.status_code, first.content, second.status_code) == (204, b"", 404)


def test_withdrawn_consent_unsubscribes_and_is_never_resubscribed(fake: FakeMailchimp) -> None:
    fake.add_member(LIST, "bounced@example.com", "cleaned")
    destination = _destination(fake)
    destination.send(_batch([_add("c1", "a@example.com", FNAME="Al")]))
    withdrawn = [Change(key, "remove", {"email_address": email}, reason="consent_withdrawn")
                 for key, email in (("c1", "a@example.com"), ("c2", "never@example.com"),
                                    ("c3", "bounced@example.com"))]
    assert all(o.ok for o in destination.send(_batch(withdrawn, 2)))
    assert fake.member(LIST, "a@example.com")["status"] == "unsubscribed"
    assert fake.member(LIST, "never@example.com") is None  # no contact made to unsubscribe it
    assert fake.member(LIST, "bounced@example.com")["status"] == "cleaned"  # left as it was
    assert fake.segment_emails(LIST, "vip") == set()
    patched = fake.calls("PATCH /lists/{list_id}/members/{subscriber_hash}")
    assert [p.path.rsplit("/", 1)[1] for p in patched] == [subscriber_hash("a@example.com")]

    [again] = destination.send(_batch([_add("c1", "a@example.com", FNAME="Al")], 3))
    assert not again.ok and "compliance state" in again.error
    assert fake.member(LIST, "a@example.com")["status"] == "unsubscribed"
    assert fake.segment_emails(LIST, "vip") == set()


def test_per_member_errors_are_outcomes(fake: FakeMailchimp) -> None:
    destination = _destination(fake)
    outcomes = destination.send(_batch([
        _add("good", "good@example.com", FNAME="G"),
        _add("tag", "tag@example.com", COLOR="red"),
        _add("fake", "not-an-address"),
        Change("blank", "add", {"email_address": "  "}),
        _add("twin", "GOOD@example.com"),
    ]))
    by_key = {o.customer_key: o for o in outcomes}
    assert by_key["good"].ok
    assert not by_key["tag"].ok and "COLOR" in by_key["tag"].error
    assert not by_key["fake"].ok and "looks fake or invalid" in by_key["fake"].error
    assert by_key["blank"].error == "email_address is empty"
    assert not by_key["twin"].ok and "customer good" in by_key["twin"].error
    assert all("\n" not in (o.error or "") for o in outcomes)
    assert fake.segment_emails(LIST, "vip") == {"good@example.com"}
    assert [m["email_address"] for m in fake.members(LIST)] == ["good@example.com"]


def test_429_storm_and_503_with_retry_after_end_as_a_clean_run(fake: FakeMailchimp) -> None:
    changes = [_add(f"c{i}", f"p{i}@example.com", OFFER="x") for i in range(30)]
    changes += [Change("c0", "update", {"email_address": "q0@example.com", "OFFER": "y"},
                       previous={"email_address": "p0@example.com"})]
    clean = _started_fake()
    try:
        _destination(clean).send(_batch(changes[:30]))
        _destination(clean).send(_batch(changes[30:], 2))
        expected = _state(clean)
    finally:
        clean.stop()

    sleeps: list[float] = []
    destination = _destination(fake, sleeps, max_backoff_seconds=60)
    fake.throttle_next(4)  # the first four requests, whatever they are
    fake.fail_next(1, status=503, retry_after=2, endpoint=SEGMENT_BATCH)
    assert all(o.ok for o in destination.send(_batch(changes[:30])))
    fake.throttle_next(2, endpoint=SUBSCRIBE)
    assert all(o.ok for o in destination.send(_batch(changes[30:], 2)))
    assert _state(fake) == expected
    assert fake.count(status=429) == 6 and fake.count(SEGMENT_BATCH, status=503) == 1
    assert 2.0 in sleeps  # the Retry-After was honoured
    assert destination.http.attempts == len(fake.requests)


def test_failures_that_outlast_the_retries_are_transient(fake: FakeMailchimp) -> None:
    destination = _destination(fake, max_attempts=3)
    destination.open(_context())
    fake.fail_next(3, status=503, endpoint=SUBSCRIBE)
    with pytest.raises(TransientDestinationError) as raised:
        destination.send(_batch([_add("c1", "a@example.com")]))
    assert "after 3 attempts" in str(raised.value) and "\n" not in str(raised.value)
    assert fake.member(LIST, "a@example.com") is None
    assert destination.send(_batch([_add("c1", "a@example.com")]))[0].ok  # the next run


def test_resending_after_lost_responses_makes_no_duplicates(fake: FakeMailchimp) -> None:
    destination = _destination(fake, max_attempts=2)
    destination.open(_context())
    changes = [_add(f"c{i}", f"p{i}@example.com", FNAME=f"N{i}") for i in range(20)]
    fake.lose_next_response(2, endpoint=SUBSCRIBE)  # applied twice, answered never
    with pytest.raises(TransientDestinationError):
        destination.send(_batch(changes))
    assert len(fake.members(LIST)) == 20  # Mailchimp did it; we do not know
    fake.lose_next_response(1, endpoint=SEGMENT_BATCH)  # the resend's tag call: retried
    outcomes = destination.send(_batch(changes))
    assert all(o.ok for o in outcomes)
    members, tagged = _state(fake)
    assert len(members) == 20 and len(tagged) == 20
    assert members["p7@example.com"] == ("subscribed", {"FNAME": "N7", "OFFER": "", "POINTS": ""})
    assert fake.count(SUBSCRIBE, fault="lost") == 2 and fake.count(SEGMENT_BATCH, fault="lost") == 1


def test_a_wrong_api_key_is_rejected_in_one_line_without_the_key(fake: FakeMailchimp) -> None:
    wrong = "fedcba9876543210fedcba9876543210-us21"
    destination = _destination(fake, key=wrong)
    with pytest.raises(DestinationRejected) as raised:
        destination.open(_context())
    message = str(raised.value)
    assert "401 API Key Invalid" in message and "crm_mailchimp" in message
    assert wrong not in message and wrong[:12] not in message and "\n" not in message


# ---- configuration ----------------------------------------------------------------------------


def test_options_and_fields() -> None:
    assert frozenset({"email_address"}) == REQUIRED_FIELDS
    assert {"segment_name", "batch_size", "max_concurrency", "requests_per_second"} <= OPTIONS
    connection = Connection("mc", "https://us21.api.mailchimp.com/3.0", password=KEY,
                            extra={"list_id": LIST})
    destination = build("mc", connection, {"batch_size": 100, "max_attempts": 3})
    assert destination.batch_size == 100 and destination.policy == RetryPolicy(max_attempts=3)
    derived = Connection("mc", "", password=KEY, extra={"list_id": LIST})
    assert api_base_url(derived, "here") == "https://us21.api.mailchimp.com/3.0"
    bare = Connection("mc", "us21.api.mailchimp.com", password=KEY, extra={"list_id": LIST})
    assert api_base_url(bare, "here") == "https://us21.api.mailchimp.com/3.0"


@pytest.mark.parametrize(("host", "extra", "options", "named"), [
    ("https://us21.api.mailchimp.com/3.0", {}, {}, "list_id"),
    ("https://us6.api.mailchimp.com/3.0", {"list_id": LIST}, {}, "data center us21"),
])
def test_connection_errors_are_one_line(host: str, extra: dict[str, str],
                                        options: dict[str, Any], named: str) -> None:
    """The connection is read at push time (options: when destinations.yml is loaded,
    tests/unit/test_destinations_config.py)."""
    with pytest.raises(ConfigError) as raised:
        build("mc", Connection("mc_conn", host, password=KEY, extra=extra), options)
    message = str(raised.value)
    assert named in message and "destination mc" in message
    assert "\n" not in message and KEY not in message


# ---- consent feedback -------------------------------------------------------------------------


def test_consent_feedback_export_pages_and_writes_atomically(fake: FakeMailchimp,
                                                             tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(1050):
        fake.add_member(LIST, f"u{i:04}@example.com", "unsubscribed",
                        last_changed=start + timedelta(minutes=i))
    for i in range(30):
        fake.add_member(LIST, f"c{i:02}@example.com", "cleaned", last_changed=start)
    for i in range(40):
        fake.add_member(LIST, f"s{i:02}@example.com", "subscribed")
    fake.add_member(LIST, "p@example.com", "pending")
    target = tmp_path / "feedback" / "mailchimp_opt_outs.jsonl"
    target.parent.mkdir()
    target.write_text("stale\n")
    connection = Connection("mc", fake.base_url, password=KEY, extra={"list_id": LIST})
    policy = RetryPolicy(backoff_seconds=0.001, max_backoff_seconds=0.01)
    fake.fail_next(1, status=502)

    assert export_mailchimp_opt_outs(connection, target, policy=policy) == 1080
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    addresses = [r["email_address"] for r in rows]
    assert len(rows) == 1080 and addresses == sorted(addresses)
    assert rows[0] == {"email_address": "c00@example.com", "status": "cleaned",
                       "last_changed": "2026-03-01T00:00:00+00:00", "list_id": LIST}
    assert {r["status"] for r in rows} == {"unsubscribed", "cleaned"}
    pages = [r for r in fake.calls("GET /lists/{list_id}/members") if r.status == 200]
    assert [(p.query["status"], p.query["offset"]) for p in pages] == [
        ("unsubscribed", "0"), ("unsubscribed", "1000"), ("cleaned", "0")]
    assert all(p.query["count"] == "1000" and "members.email_address" in p.query["fields"]
               for p in pages)
    assert sorted(p.name for p in target.parent.iterdir()) == ["mailchimp_opt_outs.jsonl"]

    since = (start + timedelta(minutes=1040)).isoformat()
    assert export_mailchimp_opt_outs(connection, target, since_last_changed=since, policy=policy) == 10
    assert len(target.read_text().splitlines()) == 10


# the run of 2026-06-30: its interval is the day 2026-06-29, whose files it loads
CONSENT_INTERVAL = Interval(datetime(2026, 6, 29, tzinfo=ZoneInfo("Europe/Madrid")),
                            datetime(2026, 6, 30, tzinfo=ZoneInfo("Europe/Madrid")))


def test_the_consent_pull_writes_each_mailchimp_list_where_the_source_loads_it(
        fake: FakeMailchimp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources_dir = use_mailchimp_destination(monkeypatch, tmp_path, fake.base_url, KEY, LIST)
    fake.add_member(LIST, "Gone@Example.com", "unsubscribed",
                    last_changed=datetime(2026, 6, 29, 10, tzinfo=UTC))
    fake.add_member(LIST, "bounced@example.com", "cleaned")
    fake.add_member(LIST, "here@example.com", "subscribed")

    assert tasks.pull_consent_feedback(CONSENT_INTERVAL) == {"news": 2}
    written = sources_dir / "mailchimp" / "opt_outs" / "news" / "2026-06-29.jsonl"
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert [(r["email_address"], r["status"]) for r in rows] == [
        ("bounced@example.com", "cleaned"), ("Gone@Example.com", "unsubscribed")]
    # the declared source finds it, dated the interval's day: this run's extract_load loads it
    source = load_sources()["mailchimp_opt_outs"]
    assert load.source_files(source, sources_dir) == [written]
    assert load.exports_for_day([source], sources_dir, date(2026, 6, 29)) == [written]
    assert sorted(p.name for p in sources_dir.rglob("*") if p.is_file()) == ["2026-06-29.jsonl"]


def test_the_consent_pull_retries_what_time_may_cure_and_fails_at_once_otherwise(
        fake: FakeMailchimp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources_dir = use_mailchimp_destination(monkeypatch, tmp_path, fake.base_url, KEY, LIST)
    fake.fail_next(2, status=503)
    with pytest.raises(TransientDestinationError, match=r"503"):  # Airflow retries the task
        tasks.pull_consent_feedback(CONSENT_INTERVAL)
    assert not sources_dir.exists()  # nothing half written

    monkeypatch.setenv("AIRFLOW_CONN_TEST_MAILCHIMP", json.dumps(
        {"conn_type": "generic", "host": fake.base_url, "password": "wrong-us21",
         "extra": {"list_id": LIST}}))
    with pytest.raises(AirflowFailException, match=r"^DestinationRejected: .*401") as raised:
        tasks.pull_consent_feedback(CONSENT_INTERVAL)
    assert "wrong-us21" not in str(raised.value)
    monkeypatch.delenv("AIRFLOW_CONN_TEST_MAILCHIMP")
    with pytest.raises(AirflowFailException, match=r"connection 'test_mailchimp'.* not defined"):
        tasks.pull_consent_feedback(CONSENT_INTERVAL)


# ---- the transport fixes this destination needed ---------------------------------------------


def test_transport_accept_and_a_rate_below_one_per_second(fake: FakeMailchimp) -> None:
    with HttpTransport("t", fake.base_url, RetryPolicy(), auth=("x", KEY)) as http:
        missing = f"/lists/{LIST}/members/{'0' * 32}"
        assert http.request("GET", missing, accept={404}).status_code == 404
        with pytest.raises(DestinationRejected):
            http.request("GET", missing)

    now, waits = [0.0], []

    def sleep(seconds: float) -> None:
        assert len(waits) < 5, "the bucket never fills"
        waits.append(seconds)
        now[0] += seconds

    bucket = _TokenBucket(0.5, lambda: now[0], sleep)
    bucket.take()
    bucket.take()
    assert waits == [2.0]  # one start every two seconds
