"""The command line of the project's Airflow: ``trebol airflow start|stop|status|exec`` and
``trebol backfill`` (``trebol.cli`` registers them with :func:`add_commands`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from trebol.cli import _progress
from trebol.settings import Settings

DAG_ID = "trebol_nightly"


def _environment(settings: Settings) -> tuple[dict[str, str], str]:
    """The services' environment and the admin's DSN (the warehouse started if embedded)."""
    from trebol.activation.config import load_activation
    from trebol.airflow.local_airflow import services_env, uses_demo_webhook
    from trebol.cli import _check_config, _warehouse

    _check_config()
    warehouse = _warehouse(settings)
    demo_webhook = uses_demo_webhook(load_activation().destinations)
    return (services_env(settings, warehouse.dsn, warehouse.pos_dsn, warehouse.role_dsns,
                         demo_webhook), warehouse.dsn)


def _start(settings: Settings) -> tuple[dict[str, str], str]:
    """Start whatever of the project's Airflow is not running; its environment."""
    from trebol.activation.config import load_activation
    from trebol.airflow.local_airflow import start, uses_demo_webhook
    from trebol.warehouse.run_lock import check_no_run

    env, dsn = _environment(settings)
    # a `trebol run` in progress would meet the scheduler's runs on the same marts
    check_no_run(dsn, "trebol airflow start")
    start(settings, env, uses_demo_webhook(load_activation().destinations), dsn, _progress)
    return env, dsn


def _print_access(settings: Settings) -> None:
    from trebol.airflow.local_airflow import ADMIN_USER, password_file, ui_url

    print(f"Airflow UI: {ui_url(settings)}  (login {ADMIN_USER}; its password is in "
          f"{password_file(settings)})")


def command_airflow(settings: Settings, args: argparse.Namespace) -> int:
    """trebol airflow start|stop|status|exec."""
    from trebol.airflow import local_airflow
    from trebol.airflow.local_runner import airflow_binary

    if args.action == "start":
        _, dsn = _start(settings)
        _print_access(settings)
        executor = local_airflow.EXECUTORS[settings.airflow_executor]
        print(f"executor: {executor}; metadata database {local_airflow.metadata_database(dsn)} on the "
              f"warehouse server; service logs in {local_airflow.log_dir(settings)}; "
              "`trebol airflow stop` stops it")
        return 0
    if args.action == "stop":
        stopped = local_airflow.stop(settings, _progress)
        print(f"airflow stopped ({', '.join(stopped)})" if stopped else "airflow was not running")
        return 0
    if args.action == "status":
        found = local_airflow.running(settings)
        for service in local_airflow.services(settings, demo_webhook=True):
            pid = found.get(service.name)
            print(f"{service.name:<16} {f'running (pid {pid})' if pid else 'stopped'}")
        if found:
            _print_access(settings)
        return 0 if found else 3
    env, _ = _environment(settings)
    argv = args.airflow_args[1:] if args.airflow_args[:1] == ["--"] else args.airflow_args
    return subprocess.run([airflow_binary(), *argv],
                          env=env, check=False).returncode


def _wait_for_dag(api: Any, dag_id: str, timeout: float = 180) -> None:
    from trebol.airflow.backfill import BackfillError

    deadline = time.monotonic() + timeout
    while True:
        try:
            api.call("GET", f"/api/v2/dags/{dag_id}")
            return
        except BackfillError:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


def command_backfill(settings: Settings, args: argparse.Namespace) -> int:
    """trebol backfill --from D1 --to D2: Airflow's backfill of the nightly DAG, watched."""
    from trebol.airflow.backfill import AirflowApi, create_backfill, planned_dates, watch_backfill
    from trebol.airflow.local_airflow import ADMIN_USER, admin_password, ui_url
    from trebol.cli import _check_config
    from trebol.extract.run_dates import check_run_date

    first: date = args.date_from
    last: date = args.date_to
    if last < first:
        print(f"trebol backfill: --to {last} is before --from {first}", file=sys.stderr)
        return 2
    sources = _check_config()
    for day in (first, last):
        check_run_date(day, sources.values(), settings.sources_dir)
    _start(settings)
    api = AirflowApi(ui_url(settings), ADMIN_USER, admin_password(settings) or "")
    _wait_for_dag(api, DAG_ID)
    planned = planned_dates(api, DAG_ID, first, last, settings.timezone, args.reprocess_behavior)
    if not planned:
        _progress(f"backfill of {DAG_ID}: nothing to run from {first} to {last} with "
                  f"--reprocess-behavior {args.reprocess_behavior} (every date has a run)")
        return 0
    backfill = create_backfill(api, DAG_ID, first, last, settings.timezone, args.reprocess_behavior)
    _progress(f"backfill {backfill['id']} of {DAG_ID}: {len(planned)} date(s) from {planned[0]} to "
              f"{planned[-1]} (reprocess {args.reprocess_behavior}), one run at a time; "
              f"UI: {ui_url(settings)}/dags/{DAG_ID}")
    outcomes = watch_backfill(api, backfill["id"], DAG_ID, planned, settings.timezone, _progress)
    failed = [outcome for outcome in outcomes if outcome.state != "success"]
    done = len(outcomes) - len(failed)
    if failed:
        first_failed = failed[0]
        print(f"trebol backfill: {first_failed.day} failed"
              f"{f' at {first_failed.failed_task}' if first_failed.failed_task else ''} "
              f"({done} of {len(outcomes)} dates succeeded; the reports of each date under "
              f"{settings.reports_dir})", file=sys.stderr)
        return 1
    _progress(f"backfill {backfill['id']}: {done} of {len(outcomes)} dates succeeded")
    return 0


def add_commands(commands: Any, date_type: Callable[[str], date]) -> None:
    """Register ``airflow`` and ``backfill`` on the CLI's subcommands."""
    from trebol.airflow.backfill import REPROCESS_BEHAVIORS

    af = commands.add_parser(
        "airflow", help="start, stop or inspect the project's Airflow (scheduler, UI, workers)",
        description="The project's Airflow 3 as background processes: api-server (UI and REST "
        "API on 127.0.0.1:TREBOL_AIRFLOW_PORT), scheduler, dag-processor, triggerer, and with "
        "TREBOL_AIRFLOW_EXECUTOR=celery TREBOL_AIRFLOW_WORKERS Celery workers (broker "
        "TREBOL_AIRFLOW_BROKER_URL). Metadata in the database trebol_airflow on the warehouse "
        "server. Once started, the nightly DAG runs on its schedule (local midnight).")
    actions = af.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("start", help="start the services not running; print the UI's URL and login")
    actions.add_parser("stop", help="stop every service")
    actions.add_parser("status", help="each service's state (exit 3 when none runs)")
    run_cli = actions.add_parser(
        "exec", help="run the airflow command line in the project's environment",
        description="Run `airflow ARGS` with the environment the services have (the project's "
        "dags folder and metadata database, no example DAGs), e.g. `trebol airflow exec -- "
        "backfill create --dag-id trebol_nightly --from-date 2026-06-27 --to-date 2026-06-29 "
        "--max-active-runs 1 --reprocess-behavior failed`.")
    run_cli.add_argument("airflow_args", nargs=argparse.REMAINDER, help="the airflow command's arguments")
    af.set_defaults(handler=command_airflow)

    bf = commands.add_parser(
        "backfill", help="backfill the nightly DAG for a date range through the scheduler",
        description="Start what of the project's Airflow is not running, submit Airflow's backfill "
        "of trebol_nightly for the logical dates FROM..TO (one run at a time, oldest first), show "
        "each date's state as it changes, and exit 1 naming the first failed date and task. "
        "--reprocess-behavior: none runs only dates without a run; failed also re-runs the dates "
        "whose run failed; completed re-runs every date. A backfilled date writes its own history "
        "and never pushes audiences unless it is the newest date; the current marts stay those of "
        "the newest date (README, Backfills).")
    bf.add_argument("--from", dest="date_from", type=date_type, required=True,
                    help="first logical date YYYY-MM-DD")
    bf.add_argument("--to", dest="date_to", type=date_type, required=True,
                    help="last logical date YYYY-MM-DD")
    bf.add_argument("--reprocess-behavior", choices=REPROCESS_BEHAVIORS, default="failed",
                    help="dates that already ran: none (skip), failed (re-run the failed ones, "
                    "default), completed (re-run all)")
    bf.set_defaults(handler=command_backfill)
