"""Redaction: one function hides every secret an address or a connection can carry, and every
message, log line and printed output that shows one goes through it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trebol import cli
from trebol.demo.pos import NotTheSimulatorsSchema, check_owned
from trebol.redaction import redact
from trebol.settings import SettingsError, load_settings
from trebol.warehouse import address, embedded

from ..helpers import PROJECT_DIR

SECRET = "SECRET-pw-42"
NOTHING_LISTENS = "127.0.0.1:1"  # a port where no server answers: connecting fails at once


@pytest.mark.parametrize(("text", "still_shown"), [
    (f"postgresql://alice:{SECRET}@db.example:6543/trebol", "postgresql://alice:***@db.example:6543/trebol"),
    (f"postgresql://alice@db.example:6543/trebol?password={SECRET}",
     "postgresql://alice@db.example:6543/trebol?password=***"),
    (f"postgresql://alice@db.example/trebol?sslmode=require&PASSWORD={SECRET}&application_name=x",
     "postgresql://alice@db.example/trebol?sslmode=require&PASSWORD=***&application_name=x"),
    (f"postgresql://alice@db.example/trebol?PassWord={SECRET}", "?PassWord=***"),
    (f"postgresql://alice@db.example/trebol?pass%77ord={SECRET}", "?pass%77ord=***"),
    (f"host=db.example port=6543 user=alice password={SECRET} dbname=trebol",
     "host=db.example port=6543 user=alice password=*** dbname=trebol"),
    (f"host=db.example password = '{SECRET} with spaces' dbname=trebol",
     "host=db.example password = *** dbname=trebol"),
    (f"host=db.example PASSWORD={SECRET}", "host=db.example PASSWORD=***"),
    (f"postgresql://alice:{SECRET}@db.example/trebol?host=/tmp/socket&port=6543",
     "postgresql://alice:***@db.example/trebol?host=/tmp/socket&port=6543"),
    (f"cannot connect to postgresql://alice:{SECRET}@db.example:6543/trebol (refused)",
     "cannot connect to postgresql://alice:***@db.example:6543/trebol (refused)"),
])
def test_every_form_of_a_password_is_hidden_and_the_rest_shown(text: str, still_shown: str) -> None:
    redacted = redact(text)
    assert SECRET not in redacted
    assert "with spaces" not in redacted
    assert still_shown in redacted


def test_a_password_with_an_at_sign_is_hidden_whole() -> None:
    assert redact("postgresql://alice:p@ss@word@db.example/trebol") == (
        "postgresql://alice:***@db.example/trebol")


def test_an_address_without_a_secret_is_unchanged() -> None:
    for text in ("postgresql://postgres@/trebol?host=/srv/run&port=5432",
                 "postgresql://db.example:5432/trebol", "host=h port=5432 dbname=d user=u",
                 "TREBOL_WAREHOUSE_DSN: the port is not a number; use host:5432"):
        assert redact(text) == text


def test_a_secret_quoted_elsewhere_in_the_message_is_hidden_there_too() -> None:
    message = (f"cannot connect to postgresql://alice:{SECRET}@h/db (invalid percent-encoded "
               f'token: "{SECRET}")')
    assert redact(message) == ('cannot connect to postgresql://alice:***@h/db (invalid '
                               'percent-encoded token: "***")')


def test_airflow_connection_extras_with_secrets_are_hidden() -> None:
    connection: dict[str, Any] = {
        "conn_type": "http", "host": "api.example", "login": "alice", "password": SECRET,
        "extra": {"api_key": SECRET, "apiKey": SECRET, "client_secret": SECRET,
                  "access-token": SECRET, "timeout": 30, "endpoint": "/v1",
                  "proxies": [f"http://bob:{SECRET}@proxy:3128"]},
    }
    redacted = redact(connection)
    assert SECRET not in json.dumps(redacted)
    assert redacted["password"] == "***"
    assert redacted["extra"] == {"api_key": "***", "apiKey": "***", "client_secret": "***",
                                 "access-token": "***", "timeout": 30, "endpoint": "/v1",
                                 "proxies": ["http://bob:***@proxy:3128"]}
    assert (redacted["host"], redacted["login"]) == ("api.example", "alice")
    assert connection["password"] == SECRET, "the caller's mapping is left as it was"


def test_an_airflow_connection_as_json_and_its_string_extra_are_hidden() -> None:
    as_json = json.dumps({"conn_type": "postgres", "host": "h", "password": SECRET,
                          "extra": json.dumps({"sslmode": "require", "token": SECRET})})
    redacted = json.loads(redact(as_json))
    assert SECRET not in json.dumps(redacted)
    assert redacted["host"] == "h" and json.loads(redacted["extra"]) == {"sslmode": "require",
                                                                         "token": "***"}
    built = redact(address.airflow_connection_json(f"postgresql://alice:{SECRET}@h:6543/db"))
    assert SECRET not in built and json.loads(built)["port"] == 6543


def test_only_the_redaction_module_masks_secrets() -> None:
    """One owner: no second helper (the old ``address.redact``) and no other module writes the
    mask itself."""
    assert not hasattr(address, "redact")
    owners = sorted(str(path.relative_to(PROJECT_DIR))
                    for folder in ("plugins", "dags") for path in (PROJECT_DIR / folder).rglob("*.py")
                    if "***" in path.read_text() or "def redact" in path.read_text())
    assert owners == ["plugins/trebol/redaction.py"]


def test_the_cannot_connect_error_hides_a_query_password() -> None:
    dsn = f"postgresql://alice@{NOTHING_LISTENS}/trebol?password={SECRET}"
    with pytest.raises(SettingsError) as error:
        embedded.check(dsn)
    message = str(error.value)
    assert SECRET not in message
    assert message.startswith(f"TREBOL_WAREHOUSE_DSN: cannot connect to postgresql://alice@"
                              f"{NOTHING_LISTENS}/trebol?password=*** (")


def test_the_cannot_connect_error_hides_a_password_the_driver_quotes() -> None:
    """libpq names the token it cannot decode: that token is the password."""
    with pytest.raises(SettingsError) as error:
        embedded.check(f"postgresql://alice:{SECRET}%zz@{NOTHING_LISTENS}/trebol", "TREBOL_POS_DSN")
    assert SECRET not in str(error.value)
    assert "percent-encoded" in str(error.value), "the reason is still given"


def test_the_simulator_refusal_hides_a_query_password() -> None:
    class OtherOwnersSchema:
        """A connection whose schema pos was made by someone else."""

        def execute(self, query: str) -> OtherOwnersSchema:
            return self

        def fetchone(self) -> tuple[str, bool]:
            return ("made by the shop's own team", False)

    with pytest.raises(NotTheSimulatorsSchema) as error:
        check_owned(OtherOwnersSchema(), f"postgresql://alice@pos.example/pos?password={SECRET}")  # type: ignore[arg-type]
    assert SECRET not in str(error.value)
    assert "schema pos in postgresql://alice@pos.example/pos?password=*** " in str(error.value)


def test_the_settings_repr_leaves_the_dsns_out() -> None:
    settings = load_settings({"TREBOL_WAREHOUSE_DSN": f"postgresql://alice:{SECRET}@h/db",
                              "TREBOL_POS_DSN": f"postgresql://alice@h/pos?password={SECRET}"})
    assert SECRET not in repr(settings)
    assert settings.warehouse_dsn and SECRET in settings.warehouse_dsn, "the value itself is kept"


def _trebol(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trebol.cli", *args], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **env}, timeout=120, check=False)


def test_cli_warehouse_url_never_prints_a_query_password(tmp_path: Path) -> None:
    """With an external DSN, `trebol warehouse url` checks it first: where nothing listens, the
    cannot-connect line is printed, without the password."""
    dsn = f"postgresql://alice@{NOTHING_LISTENS}/trebol?password={SECRET}"
    result = _trebol("warehouse", "url", env={"TREBOL_HOME": str(tmp_path),
                                              "TREBOL_WAREHOUSE_DSN": dsn})
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"trebol: TREBOL_WAREHOUSE_DSN: cannot connect to postgresql://alice@"
                           f"{NOTHING_LISTENS}/trebol?password=*** (")


@pytest.mark.parametrize("dsn", [f"postgresql://alice@db.example:6543/trebol?password={SECRET}",
                                 f"postgresql://alice:{SECRET}@db.example:6543/trebol"])
def test_cli_warehouse_url_prints_the_address_without_its_password(
        dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """The printing path, when the external warehouse answers (the check is stubbed here)."""
    monkeypatch.setenv("TREBOL_HOME", str(tmp_path))
    monkeypatch.setenv("TREBOL_WAREHOUSE_DSN", dsn)
    monkeypatch.setattr(embedded, "check", lambda dsn, setting="": None)
    for action, prefix in (("url", ""), ("start", "warehouse ready: ")):
        assert cli.main(["warehouse", action]) == 0
        printed = capsys.readouterr()
        assert SECRET not in printed.out + printed.err
        assert printed.out.startswith(f"{prefix}postgresql://alice")
        assert "@db.example:6543/trebol" in printed.out


def test_cli_settings_hides_a_query_password(tmp_path: Path) -> None:
    result = _trebol("settings", env={
        "TREBOL_HOME": str(tmp_path),
        "TREBOL_WAREHOUSE_DSN": f"postgresql://alice@db.example:6543/trebol?password={SECRET}",
        "TREBOL_POS_DSN": f"postgresql://alice:{SECRET}@pos.example/pos"})
    assert result.returncode == 0
    assert SECRET not in result.stdout + result.stderr
    assert "postgresql://alice@db.example:6543/trebol?password=***" in result.stdout
    assert "postgresql://alice:***@pos.example/pos" in result.stdout


def test_cli_simulate_checks_a_pos_dsn_and_hides_its_password(tmp_path: Path) -> None:
    """`trebol simulate --pos-dsn` (demo sources) checks the database before writing anything,
    and the error names the option without the password."""
    result = _trebol("simulate", "--pos-dsn", f"postgresql://alice:{SECRET}%zz@{NOTHING_LISTENS}/pos",
                     env={"TREBOL_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("trebol: --pos-dsn: cannot connect to postgresql://alice:***@")
    assert not (tmp_path / "sources").exists(), "nothing is written after a bad --pos-dsn"
