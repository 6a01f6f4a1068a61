"""Settings: defaults, and a one-line error naming the setting for every wrong value."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from trebol.settings import KNOWN_SETTING_NAMES, SettingsError, load_settings

from ..helpers import PROJECT_DIR


def test_defaults_point_inside_the_project() -> None:
    settings = load_settings({})
    assert settings.project_dir == PROJECT_DIR
    assert settings.home == PROJECT_DIR / ".trebol"
    assert settings.uses_embedded_warehouse
    assert settings.timezone == "Europe/Madrid"
    assert settings.demo_date == date(2026, 6, 30)
    assert settings.sources_dir == PROJECT_DIR / ".trebol" / "sources"


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("TREBOL_DEMO_CUSTOMERS", "many", "not a whole number"),
    ("TREBOL_DEMO_CUSTOMERS", "3", "below 10"),
    ("TREBOL_DEMO_DATE", "30/06/2026", "not a date"),
    ("TREBOL_TIMEZONE", "Mars/Olympus", "not an IANA timezone"),
    ("TREBOL_WAREHOUSE_DSN", "mysql://u@h/db", "is not postgresql"),
    ("TREBOL_WAREHOUSE_DSN", "postgresql://u@h:5432", "no database name"),
    ("TREBOL_WAREHOUSE_DSN", "postgresql://u@h:port/db", "port is not a number"),
    ("TREBOL_PROJECT_DIR", "/nonexistent", "holds no dbt_project"),
    ("TREBOL_LOOKBACK_DAYS", "-1", "below 0"),
    ("TREBOL_CLV_HORIZON_MONTHS", "0", "below 1"),
    ("TREBOL_CLV_DISCOUNT_RATE", "ten", "not a number"),
    ("TREBOL_CLV_DISCOUNT_RATE", "1.5", "outside [0, 1)"),
    ("TREBOL_CLV_MIN_REPEAT_CUSTOMERS", "0", "below 1"),
    ("TREBOL_CLV_CHURN_BANDS", "0.9,0.2", "not 0 < medium < high < 1"),
])
def test_wrong_value_names_the_setting_in_one_line(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({name: value})
    message = str(error.value)
    assert message.startswith(f"{name}: ")
    assert expected in message
    assert "\n" not in message


def test_every_documented_setting_is_read() -> None:
    source = (PROJECT_DIR / "plugins" / "trebol" / "settings.py").read_text()
    for name in KNOWN_SETTING_NAMES:
        assert source.count(f'"{name}"') >= 2, f"{name} is documented but never read"


def _trebol(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trebol.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_cli_stops_at_start_on_unreachable_warehouse(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path),
           "TREBOL_WAREHOUSE_DSN": "postgresql://nobody@127.0.0.1:1/x"}
    result = _trebol("run", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trebol: TREBOL_WAREHOUSE_DSN: cannot connect to")
    assert not (tmp_path / "sources").exists(), "nothing runs after a bad setting"


def test_cli_hides_the_password_of_a_bad_dsn(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path),
           "TREBOL_WAREHOUSE_DSN": "postgresql://user:s3cret@127.0.0.1:1/x"}
    result = _trebol("warehouse", "url", env=env)
    assert result.returncode == 2
    assert "s3cret" not in result.stderr and "***" in result.stderr


def test_cli_bad_setting_is_one_line(tmp_path) -> None:
    result = _trebol("run", env={"PATH": "/usr/bin:/bin", "TREBOL_DEMO_DATE": "tomorrow"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("trebol: TREBOL_DEMO_DATE: 'tomorrow' is not a date; "
                                     "use YYYY-MM-DD, e.g. 2026-06-30")


@pytest.mark.parametrize("command", [[], ["run"], ["simulate"], ["warehouse"], ["settings"]])
def test_every_subcommand_has_help(command: list[str]) -> None:
    result = _trebol(*command, "--help", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    assert "usage: trebol" in result.stdout
    assert len(result.stdout.splitlines()) >= 3
