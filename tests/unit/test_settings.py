"""Settings: defaults, and a one-line error naming the setting for every wrong value and for
every TREBOL_ variable that is no setting."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from trebol.settings import (
    ALL_SETTING_NAMES,
    INT_RANGES,
    INTERNAL_SETTINGS,
    KNOWN_SETTING_NAMES,
    SETTINGS,
    Settings,
    SettingsError,
    load_settings,
)
from trebol.warehouse import embedded

from ..helpers import PROJECT_DIR

# Unknown names the README and these tests use on purpose, as examples of typos.
EXAMPLE_TYPOS = {"TREBOL_LOOKBAK_DAYS", "TREBOL_WAREHOUSE_DNS", "TREBOL_XYZZY"}


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
    ("TREBOL_LOOKBACK_DAYS", "99999999999999999999", "above 365"),
    ("TREBOL_CLV_HORIZON_MONTHS", "0", "below 1"),
    ("TREBOL_CLV_DISCOUNT_RATE", "ten", "not a number"),
    ("TREBOL_CLV_DISCOUNT_RATE", "1.5", "outside [0, 1)"),
    ("TREBOL_CLV_MIN_REPEAT_CUSTOMERS", "0", "below 1"),
    ("TREBOL_CLV_CHURN_BANDS", "0.9,0.2", "not 0 < medium < high < 1"),
    ("TREBOL_ALERT_DEADLINE", "7am", "is not HH:MM"),
    ("TREBOL_ALERT_DEADLINE", "25:00", "is not a time of day"),
    ("TREBOL_ALERT_DEADLINE", "00:00", "when the nightly run starts"),
])
def test_wrong_value_names_the_setting_in_one_line(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({name: value})
    message = str(error.value)
    assert message.startswith(f"{name}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(("name", "too_big", "allowed"), [
    ("TREBOL_LOOKBACK_DAYS", "99999999999999999999", "from 0 to 365"),
    ("TREBOL_LOOKBACK_DAYS", "366", "from 0 to 365"),
    ("TREBOL_DEMO_CUSTOMERS", "10000001", "from 10 to 10,000,000"),
    ("TREBOL_DEMO_DAYS", "3651", "from 7 to 3,650"),
    ("TREBOL_DEMO_SEED", str(2**32), "from 0 to 4,294,967,295"),
    ("TREBOL_CLV_HORIZON_MONTHS", "121", "from 1 to 120"),
    ("TREBOL_CLV_MIN_REPEAT_CUSTOMERS", "10000001", "from 1 to 10,000,000"),
])
def test_an_integer_above_its_range_is_refused_naming_the_range(name: str, too_big: str,
                                                                allowed: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({name: too_big})
    message = str(error.value)
    assert message.startswith(f"{name}: ")
    assert " is above " in message
    assert message.endswith(f"; set it to an integer {allowed}")


def test_the_bounds_themselves_are_accepted() -> None:
    lowest = load_settings({name: str(low) for name, (low, _) in INT_RANGES.items()})
    highest = load_settings({name: str(high) for name, (_, high) in INT_RANGES.items()})
    assert (lowest.lookback_days, highest.lookback_days) == (0, 365)
    assert (lowest.demo_customers, highest.demo_customers) == (10, 10_000_000)
    assert (lowest.clv_horizon_months, highest.clv_horizon_months) == (1, 120)


@pytest.mark.parametrize("value", ["9" * 5000, "-" + "9" * 5000])
def test_a_number_too_long_to_read_is_out_of_range_in_a_short_line(value: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"TREBOL_LOOKBACK_DAYS": value})
    message = str(error.value)
    assert "the range; set it to an integer from 0 to 365" in message
    assert len(message) < 120 and "\n" not in message


def test_every_integer_setting_has_a_range() -> None:
    int_fields = {field.name for field in dataclasses.fields(Settings) if field.type == "int"}
    int_settings = {doc.name for doc in SETTINGS
                    if doc.name.removeprefix("TREBOL_").lower() in int_fields}
    assert int_settings == set(INT_RANGES)
    assert all(low < high for low, high in INT_RANGES.values())


def test_the_readme_table_gives_each_range() -> None:
    rows = {line.split("`")[1]: line for line in (PROJECT_DIR / "README.md").read_text().splitlines()
            if line.startswith("| `TREBOL_")}
    for name, (low, high) in INT_RANGES.items():
        assert f"{low:,} to {high:,}" in rows[name], name


def test_an_unknown_variable_names_the_setting_it_resembles() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"TREBOL_LOOKBAK_DAYS": "5"})
    assert str(error.value) == "TREBOL_LOOKBAK_DAYS: unknown setting; did you mean TREBOL_LOOKBACK_DAYS?"
    with pytest.raises(SettingsError) as error:
        load_settings({"TREBOL_WAREHOUSE_DNS": "postgresql://u@h/db"})
    assert str(error.value).endswith("; did you mean TREBOL_WAREHOUSE_DSN?")


def test_an_unknown_variable_like_no_setting_points_to_the_list() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"TREBOL_XYZZY": "1"})
    assert str(error.value) == ("TREBOL_XYZZY: unknown setting (no known one is close); unset it, "
                                "or see `trebol settings` for the known ones")


def test_a_blank_unknown_variable_is_unset_like_any_blank_setting() -> None:
    assert load_settings({"TREBOL_LOOKBAK_DAYS": " ", "OTHER_TOOL_SETTING": "x"}).lookback_days == 3


def test_the_variables_the_project_sets_itself_are_accepted() -> None:
    settings = load_settings({name: "1" for name in INTERNAL_SETTINGS})
    assert settings.lookback_days == 3
    assert all(who.strip() for who in INTERNAL_SETTINGS.values()), "each says who sets it"
    assert not KNOWN_SETTING_NAMES & set(INTERNAL_SETTINGS), "a setting is documented or internal"


def _project_text_files() -> list[Path]:
    """The project's own text files (no virtualenv, build output or downloaded browser)."""
    skipped = {".venv", ".git", ".trebol", "target", "logs", "node_modules", "dbt_packages",
               "__pycache__", ".ruff_cache"}
    roots = ["plugins", "dags", "tests", "dbt_project", "expectations", "config", "deploy", "docs",
             ".ci", "README.md", "Makefile", "Dockerfile", "docker-compose.yml", "pyproject.toml"]
    files = []
    for root in (PROJECT_DIR / name for name in roots):
        for path in [root] if root.is_file() else root.rglob("*"):
            parts = set(path.relative_to(PROJECT_DIR).parts)
            if (path.is_file() and not parts & skipped and not any(p.endswith(".egg-info") for p in parts)
                    and path.stat().st_size < 2_000_000):
                files.append(path)
    return files


def test_every_trebol_variable_the_project_uses_is_known() -> None:
    """Whatever sets or reads a TREBOL_ variable (code, dbt, GX, compose, CI, docs) uses a name
    load_settings accepts, so that the check for typos never stops the project's own runs."""
    name = re.compile(r"(?<![A-Za-z0-9_])TREBOL_[A-Z0-9_]*[A-Z0-9]")
    used = {found: path.relative_to(PROJECT_DIR) for path in _project_text_files()
            for found in name.findall(path.read_text(errors="ignore"))}
    assert {"TREBOL_AS_OF_AT", "TREBOL_GX_WAREHOUSE_URL", "TREBOL_DBT_DEV_SCHEMA"} <= set(used)
    unknown = {found: str(path) for found, path in used.items()
               if found not in ALL_SETTING_NAMES | EXAMPLE_TYPOS}
    assert not unknown, f"add them to INTERNAL_SETTINGS in trebol/settings.py: {unknown}"


@pytest.mark.parametrize(("setting", "advice"), [
    ("TREBOL_WAREHOUSE_DSN", "fix the URL or unset it to use the embedded warehouse"),
    ("TREBOL_POS_DSN", "fix the URL or unset it to use database trebol_pos on the warehouse server"),
    ("--pos-dsn", "fix the URL or leave --pos-dsn out (then the demo POS goes to the pipeline's "
                  "POS database, or, with --out, nowhere)"),
])
def test_the_cannot_connect_advice_fits_the_setting(setting: str, advice: str) -> None:
    with pytest.raises(SettingsError) as error:
        embedded.check("postgresql://nobody@127.0.0.1:1/x", setting)
    message = str(error.value)
    assert message.startswith(f"{setting}: cannot connect to postgresql://nobody@127.0.0.1:1/x (")
    assert message.endswith(f"); {advice}")


ADMIN = "postgresql://admin:pw@db.example:5432/trebol"


def test_a_task_role_dsn_belongs_to_an_external_warehouse() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"TREBOL_WAREHOUSE_LOADER_DSN": "postgresql://loader@db.example/trebol"})
    assert str(error.value) == ("TREBOL_WAREHOUSE_LOADER_DSN: set without TREBOL_WAREHOUSE_DSN; "
                                "unset it (the embedded warehouse has its own login roles) or set both")
    with pytest.raises(SettingsError, match=r"^TREBOL_WAREHOUSE_CHECKER_DSN: scheme 'mysql'"):
        load_settings({"TREBOL_WAREHOUSE_DSN": ADMIN, "TREBOL_WAREHOUSE_CHECKER_DSN": "mysql://c@h/db"})
    settings = load_settings({"TREBOL_WAREHOUSE_DSN": ADMIN,
                              "TREBOL_WAREHOUSE_LOADER_DSN": "postgresql://loader:x@db.example/trebol"})
    assert settings.role_dsn("loader") == "postgresql://loader:x@db.example/trebol"
    assert settings.role_dsn("checker") is None
    assert "loader:x" not in repr(settings)


def test_each_task_role_gets_a_connection_of_its_own(tmp_path: Path) -> None:
    """Embedded: the migrations' login roles on the warehouse's socket; external: the role's
    setting, else the admin's DSN (README, Least privilege); one Airflow connection each."""
    from trebol.airflow.local_runner import airflow_env

    socket = "postgresql://postgres@/trebol?host=/srv/run&port=5432"
    embedded_settings = load_settings({"TREBOL_HOME": str(tmp_path)})
    role_dsns = embedded.resolve_role_dsns(embedded_settings, socket)
    assert role_dsns == {role: f"postgresql://trebol_{role}_login@/trebol?host=/srv/run&port=5432"
                         for role in ("loader", "transformer", "activation", "checker", "eraser")}
    env = airflow_env(embedded_settings, socket, socket, role_dsns)
    logins = {name: json.loads(value)["login"] for name, value in env.items()
              if name.startswith("AIRFLOW_CONN_TREBOL_WAREHOUSE")}
    assert logins == {"AIRFLOW_CONN_TREBOL_WAREHOUSE": "postgres",
                      **{f"AIRFLOW_CONN_TREBOL_WAREHOUSE_{role.upper()}": f"trebol_{role}_login"
                         for role in role_dsns}}
    external = load_settings({"TREBOL_HOME": str(tmp_path), "TREBOL_WAREHOUSE_DSN": ADMIN})
    assert set(embedded.resolve_role_dsns(external, ADMIN).values()) == {ADMIN}
    unreachable = load_settings({"TREBOL_HOME": str(tmp_path), "TREBOL_WAREHOUSE_DSN": ADMIN,
                                 "TREBOL_WAREHOUSE_ACTIVATION_DSN": "postgresql://a:s3cret@127.0.0.1:1/x"})
    with pytest.raises(SettingsError) as error:
        embedded.resolve_role_dsns(unreachable, ADMIN)
    message = str(error.value)
    assert message.startswith("TREBOL_WAREHOUSE_ACTIVATION_DSN: cannot connect to "
                              "postgresql://a:***@127.0.0.1:1/x (")
    assert message.endswith("); fix the URL or unset it (the activation tasks then connect as "
                            "TREBOL_WAREHOUSE_DSN's user)")


def test_the_alert_deadline_is_a_local_time_of_day() -> None:
    assert load_settings({}).alert_deadline == time(7, 0)
    assert load_settings({"TREBOL_ALERT_DEADLINE": "05:30"}).alert_deadline == time(5, 30)
    assert load_settings({"TREBOL_ALERT_DEADLINE": "23:59"}).alert_deadline == time(23, 59)


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


def test_cli_stops_at_start_on_a_mistyped_setting(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path), "TREBOL_LOOKBAK_DAYS": "5"}
    for command in (["demo"], ["settings"], ["warehouse", "url"]):
        result = _trebol(*command, env=env)
        assert result.returncode == 2
        assert result.stderr.strip() == ("trebol: TREBOL_LOOKBAK_DAYS: unknown setting; did you "
                                         "mean TREBOL_LOOKBACK_DAYS?")
        assert result.stdout == ""
    assert not list(tmp_path.iterdir()), "nothing runs after an unknown setting"


def test_cli_simulate_names_the_option_of_an_unreachable_pos(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path)}
    result = _trebol("simulate", "--out", str(tmp_path / "out"), "--pos-dsn",
                     "postgresql://nobody@127.0.0.1:1/pos", env=env)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("trebol: --pos-dsn: cannot connect to postgresql://nobody@127.0.0.1:1/pos")
    assert line.endswith("; fix the URL or leave --pos-dsn out (then the demo POS goes to the "
                         "pipeline's POS database, or, with --out, nowhere)")
    assert not (tmp_path / "out").exists()


def test_cli_bad_setting_is_one_line(tmp_path) -> None:
    result = _trebol("demo", env={"PATH": "/usr/bin:/bin", "TREBOL_DEMO_DATE": "tomorrow"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("trebol: TREBOL_DEMO_DATE: 'tomorrow' is not a date; "
                                     "use YYYY-MM-DD, e.g. 2026-06-30")


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["simulate"], ["warehouse"], ["settings"],
                                     ["snapshot"], ["snapshot", "confirm"], ["clv", "fit"],
                                     ["warehouse", "url"], ["warehouse", "users", "add"], ["docs"],
                                     ["erase"]])
def test_every_subcommand_has_help(command: list[str]) -> None:
    result = _trebol(*command, "--help", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    assert "usage: trebol" in result.stdout
    assert len(result.stdout.splitlines()) >= 3


def test_the_erasure_salt_is_never_shown_and_erasure_refuses_to_run_without_it(tmp_path) -> None:
    base = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path)}
    shown = _trebol("settings", env={**base, "TREBOL_ERASURE_SALT": "s3cret-salt-0123456789"})
    assert shown.returncode == 0 and "s3cret" not in shown.stdout
    assert re.search(r"^TREBOL_ERASURE_SALT +\*\*\*  \(set\)$", shown.stdout, re.MULTILINE)
    result = _trebol("erase", "--email", "ann@example.com", env=base)
    assert result.returncode == 2
    assert result.stderr.startswith("trebol: TREBOL_ERASURE_SALT: not set; erasure requests and "
                                    "the suppression list need this secret salt")
    assert result.stderr.count("\n") == 1 and "ann@example.com" not in result.stderr
    assert not list(tmp_path.iterdir()), "nothing runs without the salt"
    short = _trebol("settings", env={**base, "TREBOL_ERASURE_SALT": "tooshort"})
    assert short.returncode == 2 and short.stderr.count("\n") == 1
    assert short.stderr.startswith("trebol: TREBOL_ERASURE_SALT: 8 characters; use a random "
                                   "secret of at least 16 characters") and "tooshort" not in short.stderr


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


@pytest.mark.parametrize("run_date", ["2030-01-01", "2026-06-01"])
def test_a_run_date_outside_the_exports_is_one_line_naming_the_range(tmp_path, run_date) -> None:
    """A date beyond the newest export (a typo) or not after the first one stops `trebol run`
    before anything starts, naming the days the exports hold and the run dates they allow; an
    opt-out file (cadence none) extends no range."""
    for day in ("2026-06-01", "2026-06-10"):
        (tmp_path / "sources/ecom/orders").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"sources/ecom/orders/{day}.jsonl").write_text("")
    (tmp_path / "sources/mailchimp/opt_outs/news").mkdir(parents=True)
    (tmp_path / "sources/mailchimp/opt_outs/news/2029-12-31.jsonl").write_text("")
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path)}
    result = _trebol("run", "--date", run_date, env=env)
    assert result.returncode == 2
    day_before = (date.fromisoformat(run_date) - timedelta(days=1)).isoformat()
    assert result.stderr.strip() == (
        f"trebol: run date {run_date} (loads {day_before}) is outside the exports in "
        f"{tmp_path / 'sources'}, which hold 2026-06-01 to 2026-06-10: run dates 2026-06-02 to "
        "2026-06-11")
    assert not (tmp_path / "warehouse").exists()


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
                                     "destinations.yml")
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.yml").write_text((PROJECT_DIR / "config" / "sources.yml").read_text())
    (config / "quality.yml").write_text((PROJECT_DIR / "config" / "quality.yml").read_text())
    result = _trebol("run", "--date", "2026-06-30", env={**base, "TREBOL_CONFIG_DIR": str(config)})
    assert result.returncode == 2
    assert result.stderr.strip() == (f"trebol: {config / 'destinations.yml'}: missing "
                                     f"(TREBOL_CONFIG_DIR={config} must hold sources.yml, "
                                     "quality.yml, destinations.yml)")
    (config / "destinations.yml").write_text("destinations:\n  fax_machine: {type: fax}\n")
    result = _trebol("run", "--date", "2026-06-30", env={**base, "TREBOL_CONFIG_DIR": str(config)})
    assert result.returncode == 2
    assert result.stderr.strip() == ("trebol: destinations.yml: destinations.fax_machine.type: 'fax' "
                                     "is not one of file, webhook, mailchimp, meta_custom_audience")


def test_settings_lists_the_values_in_force(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path), "TREBOL_LOOKBACK_DAYS": "5",
           "TREBOL_WAREHOUSE_DSN": "postgresql://user:s3cret@db.example:5432/trebol"}
    result = _trebol("settings", env=env)
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("TREBOL_")}
    assert lines["TREBOL_LOOKBACK_DAYS"].split()[1:] == ["5", "(set)"]
    assert lines["TREBOL_SOURCES_DIR"].split()[1:] == [str(tmp_path / "sources"), "(default)"]
    assert "s3cret" not in result.stdout and "user:***@db.example" in lines["TREBOL_WAREHOUSE_DSN"]


def test_a_folder_a_run_cannot_write_stops_it_before_anything_runs(tmp_path) -> None:
    """A reports folder that cannot be made (its parent is a file: as on a read-only or full
    disk, which root's tests cannot fake) stops `trebol run` with one line naming the setting,
    before the warehouse starts."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path / "home"),
           "TREBOL_REPORTS_DIR": str(blocker / "reports")}
    result = _trebol("run", "--date", "2026-06-30", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"trebol: TREBOL_REPORTS_DIR: {blocker / 'reports'} cannot be written (Not a directory); "
        "point it at a folder this user can write")
    assert not (tmp_path / "home" / "warehouse").exists()


def test_snapshot_confirm_of_an_unknown_source_is_one_line(tmp_path) -> None:
    """`trebol snapshot confirm` names the sources it knows when given another, before it
    reaches the warehouse."""
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path)}
    result = _trebol("snapshot", "confirm", "crm_contact", "2026-06-29", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "trebol: crm_contact: no such source in sources.yml (sources: campaign_events, crm_cases, ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "warehouse").exists()
