"""destinations.yml is checked when loaded: each mistake is one line naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from trebol.activation.config import ActivationConfigError, load_activation, parse

from ..helpers import PROJECT_DIR

GOOD_SYNC = {"audience": "aud_test", "destination": "drop", "fields": {"email": "email"}}


def document(destination: dict | None = None, sync: dict | None = None, **top) -> dict:
    return {"destinations": {"drop": destination or {"type": "file"}},
            "syncs": [sync or GOOD_SYNC], **top}


def test_the_demo_configuration_loads() -> None:
    config = load_activation(PROJECT_DIR / "config" / "destinations.yml")
    assert {spec.audience for spec in config.syncs} >= {
        "aud_winback_high_value", "aud_upsell_high_potential", "aud_onboarding_new",
        "aud_points_expiring", "aud_below_zero"}
    assert {config.destinations[spec.destination].type for spec in config.syncs} == {
        "file", "webhook"}


def test_defaults() -> None:
    config = parse(document())
    [sync] = config.syncs
    assert (sync.name, sync.holdout_share, config.retention_days) == ("aud_test__drop", 0.0, 400)
    assert config.audiences() == {"aud_test": 0.0}


@pytest.mark.parametrize(("doc", "message"), [
    ({"destination": {}}, "top level.destination: unknown key"),
    (document({"type": "ftp"}), "destinations.drop.type: 'ftp' is not one of file, webhook"),
    (document({"type": "file", "colour": "red"}), "destinations.drop.colour: unknown key"),
    (document({"type": "file", "format": "xlsx"}), "destinations.drop.format: 'xlsx' is not one"),
    (document({"type": "file", "batch_size": 0}), "destinations.drop.batch_size: 0 is outside"),
    (document({"type": "file", "batch_size": "many"}), "batch_size: 'many' is not a number"),
    (document({"type": "webhook"}), "destinations.drop.connection: missing"),
    (document({"type": "webhook", "connection": "a b"}), "'a b' is not an Airflow connection id"),
    (document(sync={**GOOD_SYNC, "audience": "winback"}), "syncs[0].audience: 'winback' is not"),
    (document(sync={**GOOD_SYNC, "destination": "nowhere"}), "syncs[0].destination: 'nowhere'"),
    (document(sync={**GOOD_SYNC, "holdout_share": 1}), "syncs[0].holdout_share: 1 is not a share"),
    (document(sync={**GOOD_SYNC, "holdout_share": "10%"}), "syncs[0].holdout_share: '10%'"),
    (document(sync={**GOOD_SYNC, "fields": {}}), "syncs[0].fields: empty"),
    (document(sync={**GOOD_SYNC, "fields": {"email": "e-mail"}}),
     "syncs[0].fields.email: 'e-mail' is not a column name"),
    (document(sync={**GOOD_SYNC, "fields": {"email": "email"}, "filter": "x"}),
     "syncs[0].filter: unknown key"),
    (document(audit={"retention_days": 0}), "audit.retention_days: 0 is not a whole number"),
    # each type's own API limits: Mailchimp takes 500 members a call and 10 connections
    (document({"type": "mailchimp", "connection": "mc", "batch_size": 501},
              {**GOOD_SYNC, "fields": {"email_address": "email"}}),
     "destinations.drop.batch_size: 501 is outside 1..500"),
    (document({"type": "mailchimp", "connection": "mc", "max_concurrency": 11},
              {**GOOD_SYNC, "fields": {"email_address": "email"}}),
     "destinations.drop.max_concurrency: 11 is outside 1..10"),
    (document({"type": "webhook", "connection": "hook", "batch_size": 20000}),
     "destinations.drop.batch_size: 20000 is outside 1..10000"),
    (document({"type": "webhook", "connection": "hook", "batch_size": "500"}),
     "destinations.drop.batch_size: '500' is not a number"),
    (document({"type": "meta_custom_audience", "connection": "m", "batch_size": 10001},
              {**GOOD_SYNC, "fields": {"EMAIL": "email"}}),
     "destinations.drop.batch_size: 10001 is outside 1..10000"),
    (document({"type": "mailchimp", "connection": "mc", "segment_name": "{nope}"},
              {**GOOD_SYNC, "fields": {"email_address": "email"}}),
     "destinations.drop.segment_name: '{nope}': a tag name"),
    (document({"type": "mailchimp", "connection": "mc", "colour": "red"},
              {**GOOD_SYNC, "fields": {"email_address": "email"}}),
     "destinations.drop.colour: unknown key"),
    (document({"type": "mailchimp", "connection": "mc"}),
     "syncs[0].fields: a mailchimp destination needs email_address"),
    (document({"type": "meta_custom_audience", "connection": "meta"}),
     "syncs[0].fields: a meta_custom_audience destination needs one of EMAIL, PHONE"),
    ({"destinations": {"drop": {"type": "file"}},
      "syncs": [GOOD_SYNC, GOOD_SYNC]}, "syncs[1].name: 'aud_test__drop' repeats syncs[0]"),
    ({"destinations": {"drop": {"type": "file"}},
      "syncs": [GOOD_SYNC, {**GOOD_SYNC, "name": "other", "holdout_share": 0.2}]},
     "syncs[1].holdout_share: aud_test has one control group"),
])
def test_a_wrong_key_is_one_line_naming_the_file_and_key(doc: dict, message: str) -> None:
    with pytest.raises(ActivationConfigError) as raised:
        parse(doc)
    text = str(raised.value)
    assert text.startswith("destinations.yml: ") and message in text and "\n" not in text


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yml"
    path.write_text("destinations: [unclosed", encoding="utf-8")
    with pytest.raises(ActivationConfigError, match=r"destinations.yml: cannot read"):
        load_activation(path)
