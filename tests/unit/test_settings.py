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
    result = _trebol("demo", env=env)
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
    result = _trebol("demo", env={"PATH": "/usr/bin:/bin", "TREBOL_DEMO_DATE": "tomorrow"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("trebol: TREBOL_DEMO_DATE: 'tomorrow' is not a date; "
                                     "use YYYY-MM-DD, e.g. 2026-06-30")


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["simulate"], ["warehouse"], ["settings"],
                                     ["clv", "fit"]])
def test_every_subcommand_has_help(command: list[str]) -> None:
    result = _trebol(*command, "--help", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    assert "usage: trebol" in result.stdout
    assert len(result.stdout.splitlines()) >= 3


def test_run_without_exports_for_the_interval_is_one_line(tmp_path) -> None:
    """`trebol run` never generates data: with no export dated in the interval it stops before
    starting anything, naming the folder and the day."""
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path)}
    result = _trebol("run", "--date", "2026-06-30", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"trebol run: no exports dated 2026-06-29 in {tmp_path / 'sources'} (the data interval of "
        "2026-06-30); deliver them there, set TREBOL_SOURCES_DIR, or try `trebol demo`")
    assert not (tmp_path / "warehouse").exists() and not (tmp_path / "sources").exists()


def test_a_day_that_does_not_exist_is_named_as_such() -> None:
    result = _trebol("run", "--date", "2026-02-30", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "'2026-02-30' is not a day of the calendar (2026-02 has no day 30)" in result.stderr
    result = _trebol("run", "--date", "30/06/2026", env={"PATH": "/usr/bin:/bin"})
    assert "'30/06/2026' is not a date: use YYYY-MM-DD" in result.stderr


def test_config_dir_missing_or_incomplete_stops_with_one_line(tmp_path) -> None:
    base = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path)}
    result = _trebol("run", "--date", "2026-06-30", env={**base, "TREBOL_CONFIG_DIR": str(tmp_path / "no")})
    assert result.returncode == 2
    assert result.stderr.strip() == (f"trebol: TREBOL_CONFIG_DIR: {tmp_path / 'no'} is not a folder; "
                                     "point it at the folder holding sources.yml, quality.yml, "
                                     "audiences.yml")
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.yml").write_text((PROJECT_DIR / "config" / "sources.yml").read_text())
    (config / "quality.yml").write_text((PROJECT_DIR / "config" / "quality.yml").read_text())
    result = _trebol("run", "--date", "2026-06-30", env={**base, "TREBOL_CONFIG_DIR": str(config)})
    assert result.returncode == 2
    assert result.stderr.strip() == (f"trebol: {config / 'audiences.yml'}: missing "
                                     f"(TREBOL_CONFIG_DIR={config} must hold sources.yml, "
                                     "quality.yml, audiences.yml)")
    (config / "audiences.yml").write_text("audiences:\n  winback: {destination: fax, lifecycle_stage: x}\n")
    result = _trebol("run", "--date", "2026-06-30", env={**base, "TREBOL_CONFIG_DIR": str(config)})
    assert result.returncode == 2
    assert result.stderr.strip() == ("trebol: audiences.yml: audiences.winback.destination: 'fax' is "
                                     "not one of ('file',)")


def test_settings_lists_the_values_in_force(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path), "TREBOL_LOOKBACK_DAYS": "5",
           "TREBOL_WAREHOUSE_DSN": "postgresql://user:s3cret@db.example:5432/trebol"}
    result = _trebol("settings", env=env)
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("TREBOL_")}
    assert lines["TREBOL_LOOKBACK_DAYS"].split()[1:] == ["5", "(set)"]
    assert lines["TREBOL_SOURCES_DIR"].split()[1:] == [str(tmp_path / "sources"), "(default)"]
    assert "s3cret" not in result.stdout and "user:***@db.example" in lines["TREBOL_WAREHOUSE_DSN"]
