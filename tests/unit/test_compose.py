"""The deployment description: Dockerfile, .dockerignore, docker-compose.yml, deploy/postgres-init.

``docker compose config`` validates and resolves the compose file without a Docker engine; the
tests use it when a Compose v2 CLI is installed. Where none is, the same checks run on the YAML
(PyYAML resolves the anchors and merge keys), with Compose's variable interpolation
(``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
``${VAR?message}``) done here, so no test is skipped for want of Docker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from trebol.settings import KNOWN_SETTING_NAMES, ROLE_DSN_SETTINGS, load_settings
from trebol.warehouse.address import LOGIN_ROLES, airflow_connection_json, login_role, role_conn_id

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
DOCKERFILE = PROJECT_DIR / "Dockerfile"
DOCKERIGNORE = PROJECT_DIR / ".dockerignore"
INIT_DIR = PROJECT_DIR / "deploy" / "postgres-init"

# Fake values: the compose file must resolve with them and name each one when it is missing.
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD": "test-superuser",
    "AIRFLOW_DB_PASSWORD": "test-airflow",
    "WAREHOUSE_DB_PASSWORD": "test-warehouse",
    "WAREHOUSE_LOADER_DB_PASSWORD": "test-loader",
    "WAREHOUSE_TRANSFORMER_DB_PASSWORD": "test-transformer",
    "WAREHOUSE_ACTIVATION_DB_PASSWORD": "test-activation",
    "WAREHOUSE_CHECKER_DB_PASSWORD": "test-checker",
    "WAREHOUSE_ERASER_DB_PASSWORD": "test-eraser",
    "AIRFLOW__CORE__FERNET_KEY": "test-fernet",
    "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt",
    "AIRFLOW__API__SECRET_KEY": "test-secret-key",
    "DEMO_WEBHOOK_SECRET": "test-webhook-secret",
}

AIRFLOW_SERVICES = {
    "airflow-init": ["airflow", "db", "migrate"],
    "airflow-apiserver": ["airflow", "api-server"],
    "airflow-scheduler": ["airflow", "scheduler"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "airflow-triggerer": ["airflow", "triggerer"],
    "airflow-worker": ["airflow", "celery", "worker"],
}
SERVICES = {"postgres", "redis", "demo-webhook-receiver", *AIRFLOW_SERVICES}
PROJECT_FOLDERS = ("dags", "dbt_project", "expectations", "plugins")


# --- running or emulating `docker compose config` ------------------------------------------


@cache
def compose_cli() -> tuple[str, ...] | None:
    """The Compose v2 command line (``docker compose`` or ``docker-compose`` v2), or None."""
    candidates: list[tuple[str, ...]] = []
    if docker := shutil.which("docker"):
        candidates.append((docker, "compose"))
    if standalone := shutil.which("docker-compose"):
        candidates.append((standalone,))
    for command in candidates:
        try:
            probe = subprocess.run([*command, "version", "--short"], capture_output=True,
                                   text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = probe.stdout.strip().lstrip("v")
        if probe.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2:
            return command
    return None


def _clean_env(values: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment: nothing from the developer's shell leaks into the resolution."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "DOCKER_CONFIG")
           if name in os.environ}
    return {**env, **values}


def run_compose_config(values: Mapping[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    cli = compose_cli()
    assert cli is not None
    empty_env_file = tmp_path / "empty.env"  # so a developer's .env beside the file is not read
    empty_env_file.write_text("")
    return subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "--env-file", str(empty_env_file),
         "config", "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False, env=_clean_env(values),
        cwd=tmp_path,
    )


class MissingVariable(Exception):
    """A ``${NAME:?message}`` whose variable is unset (or empty)."""


_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Compose's interpolation of one string (the subset the compose file uses)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = values.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset else value
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(f"required variable {name} is missing a value: {arg}")
            return value
        return value or ""

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, values)
    if isinstance(node, list):
        return [_interpolate_tree(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(item, values) for key, item in node.items()}
    return node


def _normalise_environment(environment: Any) -> dict[str, str]:
    if environment is None:
        return {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def parse_compose_yaml(values: Mapping[str, str]) -> dict[str, Any]:
    """The compose file resolved without Docker: anchors merged, variables interpolated."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    resolved = _interpolate_tree({k: v for k, v in raw.items() if not k.startswith("x-")}, values)
    for service in resolved["services"].values():
        service["environment"] = _normalise_environment(service.get("environment"))
        if isinstance(service.get("command"), str):
            service["command"] = shlex.split(service["command"])
    return resolved


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose configuration resolved with the fake secrets (by Compose when installed)."""
    if compose_cli() is None:
        return parse_compose_yaml(REQUIRED_SECRETS)
    result = run_compose_config(REQUIRED_SECRETS, tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def service_env(resolved: Mapping[str, Any], name: str) -> dict[str, str]:
    return _normalise_environment(resolved["services"][name].get("environment"))


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_config_resolves_with_the_expected_services(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES
    services = resolved["services"]
    assert str(services["postgres"]["image"]).startswith("postgres:15")
    assert str(services["redis"]["image"]).startswith("redis:7")
    images = set()
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"][: len(command)] == command, name
        build = service["build"]
        context = build if isinstance(build, str) else build["context"]
        assert (PROJECT_DIR / context).resolve() == PROJECT_DIR, name
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name
        images.add(service["image"])
    assert len(images) == 1, f"the Airflow services should share one image: {images}"
    assert any(str(port.get("target", port) if isinstance(port, dict) else port).endswith("8080")
               for port in services["airflow-apiserver"]["ports"])


def test_compose_databases_and_broker_are_healthy_before_airflow(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in ("postgres", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in AIRFLOW_SERVICES:
        depends_on = services[name]["depends_on"]
        for dependency in ("postgres", "redis"):
            assert depends_on[dependency]["condition"] == "service_healthy", (name, dependency)
        if name != "airflow-init":
            assert depends_on["airflow-init"]["condition"] == "service_completed_successfully"


def _volume_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes (short or long syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def test_compose_volumes(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    postgres = _volume_mounts(services["postgres"])
    assert postgres["/var/lib/postgresql/data"] in resolved["volumes"]
    init_dir = postgres["/docker-entrypoint-initdb.d"]
    assert (PROJECT_DIR / init_dir).resolve() == INIT_DIR.resolve()
    for name in AIRFLOW_SERVICES:
        mounts = _volume_mounts(services[name])
        assert mounts["/opt/airflow/trebol"] == "trebol-data", name
        assert mounts["/opt/airflow/logs"] in resolved["volumes"], name
    assert "trebol-data" in resolved["volumes"]


def test_compose_airflow_settings(resolved: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = service_env(resolved, name)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
            "postgresql+psycopg2://airflow:test-airflow@postgres:5432/airflow"), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == (
            "db+postgresql://airflow:test-airflow@postgres:5432/airflow"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-apiserver:8080/execution/"), name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "test-jwt", name
        assert env["AIRFLOW__CORE__FERNET_KEY"] == "test-fernet", name
        assert env["AIRFLOW__API__SECRET_KEY"] == "test-secret-key", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False", name


def test_compose_demo_webhook_reaches_its_receiver_with_the_same_secret(
        resolved: dict[str, Any]) -> None:
    """The demo's webhook destination (config/destinations.yml) has a connection in every
    Airflow service, to the receiver service, signed with the secret the receiver checks."""
    receiver = resolved["services"]["demo-webhook-receiver"]
    command = receiver["command"]
    port = command[command.index("--port") + 1]
    assert receiver["environment"]["DEMO_WEBHOOK_SECRET"] == "test-webhook-secret"
    assert command[command.index("--secret-env") + 1] == "DEMO_WEBHOOK_SECRET"
    for name in AIRFLOW_SERVICES:
        connection = json.loads(service_env(resolved, name)["AIRFLOW_CONN_TREBOL_DEMO_WEBHOOK"])
        assert connection["host"] == f"http://demo-webhook-receiver:{port}/hooks/trebol", name
        assert connection["password"] == "test-webhook-secret", name


def test_compose_trebol_settings_are_known_and_the_warehouse_is_set(
        resolved: dict[str, Any]) -> None:
    used = {name for service in resolved["services"]
            for name in service_env(resolved, service) if name.startswith("TREBOL_")}
    unknown = used - KNOWN_SETTING_NAMES
    assert not unknown, f"not read by trebol.settings: {sorted(unknown)}"
    for name in AIRFLOW_SERVICES:
        env = service_env(resolved, name)
        assert env["TREBOL_WAREHOUSE_DSN"] == (
            "postgresql://trebol:test-warehouse@postgres:5432/trebol"), name
        assert env["TREBOL_HOME"] == "/opt/airflow/trebol", name
        assert env["TREBOL_PROJECT_DIR"] == "/opt/trebol", name
        assert env["TREBOL_CONFIG_DIR"] == "/opt/trebol/config", name  # the image's demo config
        assert env["TREBOL_TIMEZONE"], name
        # the Airflow connection the DAG uses names the same warehouse as the DSN
        connection = json.loads(env["AIRFLOW_CONN_TREBOL_WAREHOUSE"])
        assert connection == json.loads(airflow_connection_json(env["TREBOL_WAREHOUSE_DSN"]))
        # and so does each task role's, as its login role (README, Least privilege)
        for role in LOGIN_ROLES:
            role_dsn = env[ROLE_DSN_SETTINGS[role]]
            assert role_dsn == (f"postgresql://{login_role(role)}:test-{role}@postgres:5432/trebol")
            connection = json.loads(env[f"AIRFLOW_CONN_{role_conn_id(role).upper()}"])
            assert connection == json.loads(airflow_connection_json(role_dsn)), role
        # and the settings module accepts what the containers set (project dir: this checkout)
        trebol_env = {key: value for key, value in env.items() if key.startswith("TREBOL_")}
        settings = load_settings({**trebol_env, "TREBOL_PROJECT_DIR": str(PROJECT_DIR),
                                  "TREBOL_CONFIG_DIR": str(PROJECT_DIR / "config")})
        assert settings.warehouse_dsn == env["TREBOL_WAREHOUSE_DSN"]
        assert all(settings.role_dsn(role) for role in LOGIN_ROLES)


def test_compose_sets_no_secret_literally() -> None:
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED_SECRETS:
        references = re.findall(r"\$\{" + re.escape(name) + r"(:?[-?])?", text)
        assert references, f"{name} is not taken from the environment"
        assert set(references) == {":?"}, f"{name} must be required (${{{name}:?...}})"
    raw = yaml.safe_load(text)
    for service_name, service in raw["services"].items():
        for key, value in _normalise_environment(service.get("environment")).items():
            where = f"{service_name}: {key}"
            if re.search(r"PASSWORD|SECRET|FERNET_KEY", key):
                assert value.startswith("${"), f"{where} is not taken from the environment"
            passwords = re.findall(r"://[^:/@\s]+:(.*?)@[\w.-]+[:/]", value)
            passwords += re.findall(r'"password":\s*"([^"]*)"', value)
            for password in passwords:
                assert password.startswith("${"), f"{where} holds a literal password"


@pytest.mark.parametrize("missing", sorted(REQUIRED_SECRETS))
def test_compose_fails_naming_a_missing_secret(missing: str, tmp_path: Path) -> None:
    values = {name: value for name, value in REQUIRED_SECRETS.items() if name != missing}
    if compose_cli() is None:
        assert f"${{{missing}:?" in COMPOSE_FILE.read_text()
        with pytest.raises(MissingVariable, match=re.escape(missing)):
            parse_compose_yaml(values)
        return
    result = run_compose_config(values, tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr


def test_interpolation_emulation_matches_compose_rules() -> None:
    values = {"SET": "x", "EMPTY": ""}
    assert interpolate("$${HOSTNAME} ${SET} $SET", values) == "${HOSTNAME} x x"
    assert interpolate("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${SET:-d}", values) == "d d  x"
    with pytest.raises(MissingVariable, match="UNSET"):
        interpolate("${UNSET:?set UNSET}", values)
    with pytest.raises(MissingVariable, match="EMPTY"):
        interpolate("${EMPTY:?set EMPTY}", values)


def _published_ports(service: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of a service's published ports, from Compose's
    short syntax ("127.0.0.1:15432:5432") or its resolved long one."""
    published = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published.append((port.get("host_ip", ""), str(port.get("published", "")),
                              str(port["target"])))
        else:
            host_ip, host_port, target = (["", *str(port).split(":")])[-3:]
            published.append((host_ip, host_port, target))
    return published


def test_compose_publishes_the_warehouse_for_bi_on_the_loopback_only(
        resolved: dict[str, Any], tmp_path: Path) -> None:
    """BI tools on the host reach the warehouse at 127.0.0.1:TREBOL_WAREHOUSE_PORT (the embedded
    warehouse's default port too), never on another interface; Redis stays unpublished."""
    services = resolved["services"]
    assert _published_ports(services["postgres"]) == [
        ("127.0.0.1", str(load_settings({}).warehouse_port), "5432")]
    assert not services["redis"].get("ports")
    values = {**REQUIRED_SECRETS, "TREBOL_WAREHOUSE_PORT": "25432"}
    if compose_cli() is None:
        moved = parse_compose_yaml(values)
    else:
        result = run_compose_config(values, tmp_path)
        assert result.returncode == 0, result.stderr
        moved = json.loads(result.stdout)
    assert _published_ports(moved["services"]["postgres"]) == [("127.0.0.1", "25432", "5432")]


# --- deploy/postgres-init -------------------------------------------------------------------


def test_postgres_init_creates_both_databases_with_passwords_from_the_environment(
        resolved: dict[str, Any]) -> None:
    scripts = sorted(INIT_DIR.glob("*.sql"))
    assert scripts, f"no init script in {INIT_DIR}"
    sql = "\n".join(script.read_text() for script in scripts)
    for database in ("airflow", "trebol"):
        assert re.search(rf"CREATE ROLE {database} LOGIN PASSWORD :'\w+'", sql), database
        assert re.search(rf"CREATE DATABASE {database} OWNER {database}", sql), database
    # the warehouse's migrations create roles; the task roles' logins come with their passwords
    assert "ALTER ROLE trebol CREATEROLE;" in sql
    for role in LOGIN_ROLES:
        assert re.search(rf"CREATE ROLE {login_role(role)} LOGIN PASSWORD :'\w+'", sql), role
    postgres_env = service_env(resolved, "postgres")
    for variable in re.findall(r"\\getenv \w+ (\w+)", sql):
        assert postgres_env.get(variable), f"the postgres service does not set {variable}"


# --- Dockerfile and .dockerignore -----------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _env_pairs(arguments: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(arguments))


def test_dockerfile_installs_the_lock_and_copies_the_project() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    workdir, copied, env, args, runs, user = "/", {}, {}, {}, [], "root"
    for keyword, arguments in instructions:
        if keyword == "WORKDIR":
            workdir = str(Path(workdir) / arguments)
        elif keyword == "COPY":
            *sources, target = (part for part in shlex.split(arguments)
                                if not part.startswith("--"))
            for source in sources:  # a folder's contents go to target, a file into it
                folder = (PROJECT_DIR / source).is_dir()
                destination = Path(workdir) / target
                copied[source.rstrip("/")] = str(
                    destination if folder else destination / Path(source).name)
        elif keyword == "ENV":
            env.update(_env_pairs(arguments))
        elif keyword == "ARG":
            name, _, default = arguments.partition("=")
            args[name] = default
        elif keyword == "RUN":
            runs.append(arguments)
        elif keyword == "USER":
            user = arguments
    for folder in PROJECT_FOLDERS:
        assert copied.get(folder) == f"/opt/trebol/{folder}", (folder, copied)
    assert "requirements.lock" in copied and "pyproject.toml" in copied
    install = " ".join(runs)
    assert re.search(r"uv pip sync --system [^&]*requirements\.lock", install), install
    assert re.search(r"uv pip install --system --no-deps (-e )?\.", install), install
    uv_pin = re.search(r"^uv==(\S+)", (PROJECT_DIR / "requirements.lock").read_text(), re.M)
    pinned = re.search(r"pip install \"?uv==(\$\{UV_VERSION\}|[\w.]+)", install)
    assert pinned, "uv is not installed at a pinned version"
    uv_version = args.get("UV_VERSION") if pinned.group(1) == "${UV_VERSION}" else pinned.group(1)
    assert uv_version == "0.13.8"
    assert uv_pin is None or uv_pin.group(1) == uv_version, "uv differs from requirements.lock"
    assert env.items() >= {
        "AIRFLOW_HOME": "/opt/airflow",
        "TREBOL_PROJECT_DIR": "/opt/trebol",
        "AIRFLOW__CORE__DAGS_FOLDER": "/opt/trebol/dags",
        "AIRFLOW__CORE__PLUGINS_FOLDER": "/opt/trebol/plugins",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "TQDM_DISABLE": "1",
    }.items()
    assert {name for name in env if name.startswith("TREBOL_")} <= KNOWN_SETTING_NAMES
    assert user.split(":")[0] not in ("root", "0"), "the image must run as a non-root user"


def test_dockerignore_keeps_local_state_out_and_the_project_in() -> None:
    patterns = {line.strip().strip("/") for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for excluded in (".venv", ".trebol", ".airflow", ".git", "dbt_project/target",
                     "dbt_project/logs", ".pytest_cache", ".ruff_cache", "**/__pycache__"):
        assert excluded in patterns, excluded
    for needed in (*PROJECT_FOLDERS, "requirements.lock", "pyproject.toml"):
        assert needed not in patterns, needed


def test_lock_provides_the_celery_executor() -> None:
    lock = (PROJECT_DIR / "requirements.lock").read_text()
    for package in ("apache-airflow-providers-celery", "celery", "redis"):
        assert re.search(rf"^{re.escape(package)}==", lock, re.M), package
