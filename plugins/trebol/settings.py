"""Every Trébol setting, read from the environment in one place.

Each setting has a documented default (see ``SETTINGS`` and the README). A value that is
wrong, or a ``TREBOL_`` variable that is no setting (a typo), raises :class:`SettingsError`
whose message is one line naming the variable and the fix; the CLI prints that line and exits,
so a bad setting never shows up as a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_DIR_DEFAULT = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    """A setting is missing or wrong; the message is one line that names it and the fix."""


class ConfigError(ValueError):
    """A configuration file (in TREBOL_CONFIG_DIR) is missing or wrong; the message is one line
    naming the file and the key."""


CONFIG_FILES = ("sources.yml", "quality.yml", "destinations.yml")


@dataclass(frozen=True)
class SettingDoc:
    """Name, default and meaning of one environment setting."""

    name: str
    default: str
    meaning: str


SETTINGS: tuple[SettingDoc, ...] = (
    SettingDoc("TREBOL_PROJECT_DIR", "the checkout holding dags/ and dbt_project/",
               "project folder (dags, dbt project, expectations)"),
    SettingDoc("TREBOL_CONFIG_DIR", "<project>/config (the demo's configuration)",
               "the company's configuration: sources.yml, quality.yml, destinations.yml"),
    SettingDoc("TREBOL_HOME", "<project>/.trebol",
               "state folder: embedded warehouse, demo sources, reports, file drops"),
    SettingDoc("TREBOL_WAREHOUSE_DSN", "(unset: embedded PostgreSQL under TREBOL_HOME)",
               "postgresql://user:password@host:port/database of an external warehouse"),
    # BI tools reach the embedded warehouse over TCP on 127.0.0.1 at this port (README, BI tools)
    SettingDoc("TREBOL_WAREHOUSE_PORT", "15432",
               "port of the embedded warehouse on 127.0.0.1, for BI tools (docker-compose "
               "publishes its warehouse there too)"),
    # the task roles' logins on an external warehouse (README, "Least privilege")
    SettingDoc("TREBOL_WAREHOUSE_LOADER_DSN",
               "(unset: embedded: trebol_loader_login; external: TREBOL_WAREHOUSE_DSN)",
               "postgresql:// URL of a login acting as trebol_loader (extract_load)"),
    SettingDoc("TREBOL_WAREHOUSE_TRANSFORMER_DSN",
               "(unset: embedded: trebol_transformer_login; external: TREBOL_WAREHOUSE_DSN)",
               "postgresql:// URL of a login acting as trebol_transformer (dbt, fit_clv)"),
    SettingDoc("TREBOL_WAREHOUSE_ACTIVATION_DSN",
               "(unset: embedded: trebol_activation_login; external: TREBOL_WAREHOUSE_DSN)",
               "postgresql:// URL of a login acting as trebol_activation (stage and push audiences)"),
    SettingDoc("TREBOL_WAREHOUSE_CHECKER_DSN",
               "(unset: embedded: trebol_checker_login; external: TREBOL_WAREHOUSE_DSN)",
               "postgresql:// URL of a login acting as trebol_checker (checks, summary)"),
    SettingDoc("TREBOL_WAREHOUSE_ERASER_DSN",
               "(unset: embedded: trebol_eraser_login; external: TREBOL_WAREHOUSE_DSN)",
               "postgresql:// URL of a login acting as trebol_eraser (erasure requests)"),
    SettingDoc("TREBOL_POS_DSN", "(unset: database trebol_pos on the warehouse server)",
               "postgresql:// URL of the point-of-sale database (the simulator writes the demo there)"),
    SettingDoc("TREBOL_SOURCES_DIR", "<TREBOL_HOME>/sources", "where source exports land"),
    SettingDoc("TREBOL_REPORTS_DIR", "<TREBOL_HOME>/reports", "run summaries and data-quality reports"),
    SettingDoc("TREBOL_FILE_DROP_DIR", "<TREBOL_HOME>/outbox", "file destination for segment lists"),
    SettingDoc("TREBOL_TIMEZONE", "Europe/Madrid", "business timezone: a day starts at local midnight"),
    SettingDoc("TREBOL_DEMO_DATE", "2026-06-30", "logical date of the demo run (YYYY-MM-DD)"),
    SettingDoc("TREBOL_DEMO_CUSTOMERS", "2000", "people in the simulated demo data"),
    SettingDoc("TREBOL_DEMO_DAYS", "180", "days of history the simulator generates"),
    SettingDoc("TREBOL_DEMO_SEED", "42", "random seed of the simulator"),
    SettingDoc("TREBOL_LOOKBACK_DAYS", "3", "late-arrival lookback added before each data interval"),
    SettingDoc("TREBOL_RETRY_DELAY_SECONDS", "120",
               "wait before Airflow retries a task that failed on a transient error"),
    SettingDoc("TREBOL_EXPECTED_CUSTOMERS", "20000",
               "about how many customers the warehouse holds: each task's execution_timeout "
               "grows in proportion above the 20,000 it was measured on (README, Task policy)"),
    SettingDoc("TREBOL_SCHEDULE_END", "(unset: none)",
               "last logical date (YYYY-MM-DD) the nightly schedule runs; later dates are "
               "neither scheduled nor backfilled"),
    # the project's Airflow services (`trebol airflow start`, README "Airflow")
    SettingDoc("TREBOL_AIRFLOW_PORT", "18080",
               "port of the Airflow UI and API on 127.0.0.1 (`trebol airflow start`)"),
    SettingDoc("TREBOL_AIRFLOW_EXECUTOR", "local",
               "executor of `trebol airflow start`: local (LocalExecutor) or celery "
               "(CeleryExecutor, workers reading TREBOL_AIRFLOW_BROKER_URL)"),
    SettingDoc("TREBOL_AIRFLOW_BROKER_URL", "redis://127.0.0.1:6379/0",
               "the Celery broker (Redis) when TREBOL_AIRFLOW_EXECUTOR=celery"),
    SettingDoc("TREBOL_AIRFLOW_WORKERS", "2",
               "Celery workers `trebol airflow start` starts when TREBOL_AIRFLOW_EXECUTOR=celery"),
    SettingDoc("TREBOL_ALERT_DEADLINE", "07:00",
               "local time (HH:MM, TREBOL_TIMEZONE) by which a nightly run that started at midnight "
               "should have succeeded; past it, a late-run alert"),
    SettingDoc("TREBOL_CLV_HORIZON_MONTHS", "36", "months of expected margin summed into predicted_clv"),
    SettingDoc("TREBOL_CLV_DISCOUNT_RATE", "0.10", "annual discount rate of predicted_clv (0.10 = 10%)"),
    SettingDoc("TREBOL_CLV_MIN_REPEAT_CUSTOMERS", "100", "fewer repeat customers fail the CLV fit"),
    SettingDoc("TREBOL_CLV_CHURN_BANDS", "0.5,0.8", "churn_risk from which the band is medium, high"),
    SettingDoc("TREBOL_ERASURE_SALT", "(unset: erasure requests are refused)",
               "secret salt of the erasure suppression list's hashes, at least 16 characters; "
               "keep it for good (the list is only readable with it)"),
)

# Settings whose value is a secret: `trebol settings` never shows it
SECRET_SETTINGS = frozenset({"TREBOL_ERASURE_SALT", "TREBOL_AIRFLOW_BROKER_URL"})
# the shortest erasure salt accepted (characters)
MIN_SALT_LENGTH = 16

KNOWN_SETTING_NAMES = frozenset(doc.name for doc in SETTINGS)

# The setting of each login role's DSN on an external warehouse (trebol.warehouse.address.LOGIN_ROLES)
ROLE_DSN_SETTINGS = {
    "loader": "TREBOL_WAREHOUSE_LOADER_DSN",
    "transformer": "TREBOL_WAREHOUSE_TRANSFORMER_DSN",
    "activation": "TREBOL_WAREHOUSE_ACTIVATION_DSN",
    "checker": "TREBOL_WAREHOUSE_CHECKER_DSN",
    "eraser": "TREBOL_WAREHOUSE_ERASER_DSN",
}

# TREBOL_ variables that are no user setting but that the project sets (or a developer sets for
# dbt or the tests) and reads: known, so never refused. Who sets each:
INTERNAL_SETTINGS: dict[str, str] = {
    "TREBOL_AS_OF_AT": "the dbt tasks (airflow/dbt_build.py) and the tests: the run's as-of moment",
    "TREBOL_DBT_HOST": "warehouse/address.dbt_env, for dbt_project/profiles.yml",
    "TREBOL_DBT_PORT": "warehouse/address.dbt_env, for dbt_project/profiles.yml",
    "TREBOL_DBT_USER": "warehouse/address.dbt_env, for dbt_project/profiles.yml",
    "TREBOL_DBT_PASSWORD": "warehouse/address.dbt_env, for dbt_project/profiles.yml",
    "TREBOL_DBT_DBNAME": "warehouse/address.dbt_env, for dbt_project/profiles.yml",
    "TREBOL_DBT_DEV_SCHEMA": "a developer running `dbt build --target dev` (profiles.yml)",
    "TREBOL_GX_WAREHOUSE_URL": "quality/gx_project.open_context, for great_expectations.yml",
    "TREBOL_GX_RESULTS_DIR": "quality/gx_project.open_context, for great_expectations.yml",
    "TREBOL_GX_DATA_DOCS_DIR": "quality/gx_project.open_context, for great_expectations.yml",
    "TREBOL_TEST_CHROMIUM": "a developer running the browser tests (tests/browser.py)",
    "TREBOL_TEST_HOME": "the test session's state folder (tests/helpers.py; .ci/run's server pass)",
    "TREBOL_DAG_RUN_CONF": "airflow/local_runner.run_dag, for its child: the DAG run's conf",
}

ALL_SETTING_NAMES = KNOWN_SETTING_NAMES | frozenset(INTERNAL_SETTINGS)

# The whole numbers a setting accepts, lowest and highest.
INT_RANGES: dict[str, tuple[int, int]] = {
    "TREBOL_DEMO_CUSTOMERS": (10, 10_000_000),
    "TREBOL_DEMO_DAYS": (7, 3650),  # ten years of history
    "TREBOL_DEMO_SEED": (0, 2**32 - 1),
    "TREBOL_LOOKBACK_DAYS": (0, 365),
    "TREBOL_RETRY_DELAY_SECONDS": (1, 3600),
    "TREBOL_EXPECTED_CUSTOMERS": (1, 1_000_000_000),
    "TREBOL_CLV_HORIZON_MONTHS": (1, 120),  # ten years of expected margin
    "TREBOL_CLV_MIN_REPEAT_CUSTOMERS": (1, 10_000_000),
    "TREBOL_WAREHOUSE_PORT": (1024, 65535),  # no privileged port: the server runs unprivileged
    "TREBOL_AIRFLOW_PORT": (1024, 65535),
    "TREBOL_AIRFLOW_WORKERS": (1, 64),
}


def allowed_range(name: str) -> str:
    """The values an integer setting accepts, in words (empty for other settings)."""
    if name not in INT_RANGES:
        return ""
    minimum, maximum = INT_RANGES[name]
    return f"an integer from {minimum:,} to {maximum:,}"


@dataclass(frozen=True)
class Settings:
    """Validated settings; build with :func:`load_settings`. The repr leaves the DSNs out: they
    may hold passwords."""

    project_dir: Path
    config_dir: Path
    home: Path
    warehouse_dsn: str | None = field(repr=False)
    pos_dsn: str | None = field(repr=False)
    sources_dir: Path
    reports_dir: Path
    file_drop_dir: Path
    timezone: str
    demo_date: date
    demo_customers: int
    demo_days: int
    demo_seed: int
    lookback_days: int
    retry_delay_seconds: int = 120
    expected_customers: int = 20_000
    alert_deadline: time = time(7, 0)
    clv_horizon_months: int = 36
    clv_discount_rate: float = 0.10
    clv_min_repeat_customers: int = 100
    clv_churn_bands: tuple[float, float] = (0.5, 0.8)
    warehouse_loader_dsn: str | None = field(default=None, repr=False)
    warehouse_transformer_dsn: str | None = field(default=None, repr=False)
    warehouse_activation_dsn: str | None = field(default=None, repr=False)
    warehouse_checker_dsn: str | None = field(default=None, repr=False)
    warehouse_port: int = 15432
    warehouse_eraser_dsn: str | None = field(default=None, repr=False)
    erasure_salt: str | None = field(default=None, repr=False)
    schedule_end: date | None = None
    airflow_port: int = 18080
    airflow_executor: str = "local"
    airflow_broker_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    airflow_workers: int = 2

    def config_file(self, name: str) -> Path:
        """A file of the configuration folder; a one-line ConfigError when it is missing."""
        path = self.config_dir / name
        if not path.is_file():
            raise ConfigError(f"{path}: missing (TREBOL_CONFIG_DIR={self.config_dir} must hold "
                              f"{', '.join(CONFIG_FILES)})")
        return path

    def report_dir(self, as_of_date: date) -> Path:
        """Folder of the reports of the run as of ``as_of_date``."""
        return self.reports_dir / as_of_date.isoformat()

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def dags_dir(self) -> Path:
        return self.project_dir / "dags"

    @property
    def expectations_dir(self) -> Path:
        return self.project_dir / "expectations"

    @property
    def embedded_data_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def dbt_cache_dir(self) -> Path:
        """Cosmos's cache of dbt's partial-parse file, shared by the dbt tasks of every run."""
        return self.home / "dbt_cache"

    @property
    def uses_embedded_warehouse(self) -> bool:
        return self.warehouse_dsn is None

    def role_dsn(self, role: str) -> str | None:
        """The external warehouse's DSN for a task role (``ROLE_DSN_SETTINGS``), if set."""
        return getattr(self, ROLE_DSN_SETTINGS[role].removeprefix("TREBOL_").lower())


def _fail(name: str, problem: str, fix: str) -> SettingsError:
    return SettingsError(f"{name}: {problem}; {fix}")


def check_writable(settings: Settings) -> None:
    """Before a run: the folders a run writes (state, reports, file drops) exist or can be made,
    and take a file; else one line naming the setting (a run would otherwise fail in a task)."""
    folders = (("TREBOL_HOME", settings.home), ("TREBOL_REPORTS_DIR", settings.reports_dir),
               ("TREBOL_FILE_DROP_DIR", settings.file_drop_dir))
    for name, folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".trebol-write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise _fail(name, f"{folder} cannot be written ({error.strerror or error})",
                        "point it at a folder this user can write") from None


def check_names(env: Mapping[str, str]) -> None:
    """Refuse a non-blank ``TREBOL_`` variable that is no setting: a typo would otherwise leave
    the setting it meant at its default without a word."""
    unknown = sorted(name for name, value in env.items()
                     if name.startswith("TREBOL_") and value.strip() and name not in ALL_SETTING_NAMES)
    if unknown:
        raise _unknown(unknown[0])


def _unknown(name: str) -> SettingsError:
    """The error for an unknown variable, with the known name closest to it (compared without
    the prefix all share, so that TREBOL_ alone makes no match)."""
    known = {known_name.removeprefix("TREBOL_"): known_name for known_name in ALL_SETTING_NAMES}
    close = difflib.get_close_matches(name.removeprefix("TREBOL_"), sorted(known), n=1)
    if close:
        return _fail(name, "unknown setting", f"did you mean {known[close[0]]}?")
    return _fail(name, "unknown setting (no known one is close)",
                 "unset it, or see `trebol settings` for the known ones")


def _shown(raw: str) -> str:
    """A value as a message quotes it: at most 24 characters."""
    return raw if len(raw) <= 24 else f"{raw[:20]}…"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    """An integer setting within its ``INT_RANGES`` bounds."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    minimum, maximum = INT_RANGES[name]
    fix = f"set it to {allowed_range(name)}"
    try:
        value = int(raw)
    except ValueError:
        if re.fullmatch(r"[+-]?\d+", raw):  # digits past int()'s limit: far out of range
            side = "below" if raw.startswith("-") else "above"
            raise _fail(name, f"{_shown(raw)} is {side} the range", fix) from None
        raise _fail(name, f"{_shown(raw)!r} is not a whole number", fix) from None
    if value < minimum:
        raise _fail(name, f"{_shown(str(value))} is below {minimum:,}", fix)
    if value > maximum:
        raise _fail(name, f"{_shown(str(value))} is above {maximum:,}", fix)
    return value


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _fail(name, f"{raw!r} is not a number", "set a rate like 0.10 for 10% a year") from None
    if not 0 <= value < 1:
        raise _fail(name, f"{value} is outside [0, 1)", "set a rate like 0.10 for 10% a year")
    return value


def _bands(env: Mapping[str, str], name: str, default: str) -> tuple[float, float]:
    raw = env.get(name, "").strip() or default
    try:
        medium, high = (float(part) for part in raw.split(","))
    except ValueError:
        raise _fail(name, f"{raw!r} is not two numbers", "use medium,high like 0.5,0.8") from None
    if not 0 < medium < high < 1:
        raise _fail(name, f"{raw!r} is not 0 < medium < high < 1", "use medium,high like 0.5,0.8")
    return medium, high


def _date(env: Mapping[str, str], name: str, default: str) -> date:
    raw = env.get(name, "").strip() or default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _fail(name, f"{raw!r} is not a date", "use YYYY-MM-DD, e.g. 2026-06-30") from None


def _optional_date(env: Mapping[str, str], name: str) -> date | None:
    raw = env.get(name, "").strip()
    return _date(env, name, raw) if raw else None


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise _fail(name, f"{_shown(raw)!r} is not one of {', '.join(choices)}",
                    f"set it to {' or '.join(choices)}")
    return raw


def _broker_url(env: Mapping[str, str], name: str, default: str) -> str:
    """A Celery broker URL (Redis): its scheme is checked, never quoted (it may hold a password)."""
    raw = env.get(name, "").strip() or default
    scheme = urlsplit(raw).scheme
    if scheme not in ("redis", "rediss"):
        raise _fail(name, f"scheme {scheme or '(none)'!r} is not redis",
                    "use redis://host:6379/0 (rediss:// for TLS)")
    return raw


def _clock_time(env: Mapping[str, str], name: str, default: str) -> time:
    """A local time of day, HH:MM, after midnight (the nightly run starts at midnight)."""
    raw = env.get(name, "").strip() or default
    fix = "use HH:MM between 00:01 and 23:59, e.g. 07:00"
    if not re.fullmatch(r"\d{2}:\d{2}", raw):
        raise _fail(name, f"{_shown(raw)!r} is not HH:MM", fix)
    try:
        value = time.fromisoformat(raw)
    except ValueError:
        raise _fail(name, f"{raw!r} is not a time of day", fix) from None
    if value == time(0, 0):
        raise _fail(name, "00:00 is when the nightly run starts", fix)
    return value


def _timezone(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail(name, f"{raw!r} is not an IANA timezone",
                    "use a name like Europe/Madrid or UTC") from None
    return raw


def validate_dsn(dsn: str, name: str = "TREBOL_WAREHOUSE_DSN") -> str:
    """Check the shape of a PostgreSQL URL (not that it answers: see ``warehouse.check``)."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise _fail(name, f"scheme {parts.scheme or '(none)'!r} is not postgresql",
                    "use postgresql://user:password@host:port/database")
    if not parts.path.strip("/"):
        raise _fail(name, "no database name in the URL",
                    "end the URL with /<database>, e.g. postgresql://user@host:5432/trebol")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _fail(name, "the port is not a number", "use host:5432 or leave the port out") from None
    return dsn


def _role_dsn(env: Mapping[str, str], name: str) -> str | None:
    """A task role's DSN on the external warehouse: only beside TREBOL_WAREHOUSE_DSN (the embedded
    warehouse has its own login roles)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not env.get("TREBOL_WAREHOUSE_DSN", "").strip():
        raise _fail(name, "set without TREBOL_WAREHOUSE_DSN",
                    "unset it (the embedded warehouse has its own login roles) or set both")
    return validate_dsn(raw, name)


def _salt(env: Mapping[str, str], name: str) -> str | None:
    """The erasure salt: unset, or a secret of at least ``MIN_SALT_LENGTH`` characters (never
    quoted in a message)."""
    raw = env.get(name, "")
    if not raw.strip():
        return None
    if len(raw) < MIN_SALT_LENGTH or raw != raw.strip():
        raise _fail(name, f"{len(raw)} characters{' with surrounding spaces' if raw != raw.strip() else ''}",
                    f"use a random secret of at least {MIN_SALT_LENGTH} characters, e.g. "
                    "python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return raw


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name, "").strip()
    path = Path(raw).expanduser() if raw else default
    return path.resolve()


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    check_names(env)
    project_dir = _path(env, "TREBOL_PROJECT_DIR", PROJECT_DIR_DEFAULT)
    if not (project_dir / "dbt_project" / "dbt_project.yml").is_file():
        raise _fail("TREBOL_PROJECT_DIR", f"{project_dir} holds no dbt_project/dbt_project.yml",
                    "point it at the Trébol checkout or unset it")
    config_dir = _path(env, "TREBOL_CONFIG_DIR", project_dir / "config")
    if not config_dir.is_dir():
        raise _fail("TREBOL_CONFIG_DIR", f"{config_dir} is not a folder",
                    f"point it at the folder holding {', '.join(CONFIG_FILES)}")
    home = _path(env, "TREBOL_HOME", project_dir / ".trebol")
    dsn_raw = env.get("TREBOL_WAREHOUSE_DSN", "").strip()
    pos_raw = env.get("TREBOL_POS_DSN", "").strip()
    return Settings(
        project_dir=project_dir,
        config_dir=config_dir,
        home=home,
        warehouse_dsn=validate_dsn(dsn_raw) if dsn_raw else None,
        pos_dsn=validate_dsn(pos_raw, "TREBOL_POS_DSN") if pos_raw else None,
        sources_dir=_path(env, "TREBOL_SOURCES_DIR", home / "sources"),
        reports_dir=_path(env, "TREBOL_REPORTS_DIR", home / "reports"),
        file_drop_dir=_path(env, "TREBOL_FILE_DROP_DIR", home / "outbox"),
        timezone=_timezone(env, "TREBOL_TIMEZONE", "Europe/Madrid"),
        demo_date=_date(env, "TREBOL_DEMO_DATE", "2026-06-30"),
        demo_customers=_int(env, "TREBOL_DEMO_CUSTOMERS", 2000),
        demo_days=_int(env, "TREBOL_DEMO_DAYS", 180),
        demo_seed=_int(env, "TREBOL_DEMO_SEED", 42),
        lookback_days=_int(env, "TREBOL_LOOKBACK_DAYS", 3),
        retry_delay_seconds=_int(env, "TREBOL_RETRY_DELAY_SECONDS", 120),
        expected_customers=_int(env, "TREBOL_EXPECTED_CUSTOMERS", 20_000),
        alert_deadline=_clock_time(env, "TREBOL_ALERT_DEADLINE", "07:00"),
        clv_horizon_months=_int(env, "TREBOL_CLV_HORIZON_MONTHS", 36),
        clv_discount_rate=_rate(env, "TREBOL_CLV_DISCOUNT_RATE", 0.10),
        clv_min_repeat_customers=_int(env, "TREBOL_CLV_MIN_REPEAT_CUSTOMERS", 100),
        clv_churn_bands=_bands(env, "TREBOL_CLV_CHURN_BANDS", "0.5,0.8"),
        warehouse_port=_int(env, "TREBOL_WAREHOUSE_PORT", 15432),
        **{name.removeprefix("TREBOL_").lower(): _role_dsn(env, name)
           for name in ROLE_DSN_SETTINGS.values()},
        erasure_salt=_salt(env, "TREBOL_ERASURE_SALT"),
        schedule_end=_optional_date(env, "TREBOL_SCHEDULE_END"),
        airflow_port=_int(env, "TREBOL_AIRFLOW_PORT", 18080),
        airflow_executor=_choice(env, "TREBOL_AIRFLOW_EXECUTOR", "local", ("local", "celery")),
        airflow_broker_url=_broker_url(env, "TREBOL_AIRFLOW_BROKER_URL", "redis://127.0.0.1:6379/0"),
        airflow_workers=_int(env, "TREBOL_AIRFLOW_WORKERS", 2),
    )
