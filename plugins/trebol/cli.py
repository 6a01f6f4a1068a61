"""The ``trebol`` command line: run the nightly DAG on your exports (``run``) or on generated demo
data (``demo``), generate demo data, manage the warehouse, list settings, fit CLV models."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from trebol.settings import (
    ROLE_DSN_SETTINGS,
    SECRET_SETTINGS,
    SETTINGS,
    ConfigError,
    Settings,
    SettingsError,
    allowed_range,
    check_writable,
    load_settings,
)

if TYPE_CHECKING:
    from trebol.extract.sources import Source

DAG_ID = "trebol_nightly"


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def _date(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day of the calendar "
                                         f"({text[:7]} has no day {text[8:]})") from None


def _check_config() -> dict[str, Source]:
    """Parse every configuration file before any task runs (a wrong one raises ConfigError);
    the declared sources."""
    from trebol.activation.config import load_activation
    from trebol.extract.sources import load_sources
    from trebol.quality.rules import load_rules

    load_rules()
    load_activation()
    return load_sources()


def _run(settings: Settings, run_date: date, warehouse: Warehouse, sources: list[str],
         command: str) -> int:
    """The nightly DAG for one logical date with real Airflow, then the summary; one run at a
    time on the warehouse (``trebol.warehouse.run_lock``)."""
    from trebol import summary
    from trebol.activation.config import load_activation
    from trebol.airflow.local_airflow import refuse_if_running
    from trebol.airflow.local_runner import run_dag
    from trebol.demo.endpoints import demo_endpoints
    from trebol.interval import local_midnight
    from trebol.warehouse.run_lock import exclusive_run

    refuse_if_running(settings, f"trebol {command} --date {run_date}")
    logical_date = local_midnight(run_date, settings.timezone)
    report_dir = settings.report_dir(run_date)
    started = time.monotonic()
    with exclusive_run(warehouse.dsn, f"trebol {command} {run_date} (pid {os.getpid()})"):
        (report_dir / "summary.json").unlink(missing_ok=True)
        try:
            with demo_endpoints(settings, load_activation()) as endpoint_env:
                run_dag(settings, warehouse.dsn, warehouse.pos_dsn, warehouse.role_dsns, DAG_ID,
                        logical_date, report_dir / "airflow.log", _progress,
                        map_labels={"extract_load": sorted(sources)}, extra_env=endpoint_env)
        finally:
            # the summary task runs whatever the checks found: print it before any failure
            if (report_dir / "summary.json").exists():
                print(summary.render(json.loads((report_dir / "summary.json").read_text())))
    _progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


@dataclass(frozen=True)
class Warehouse:
    """Where a run's tasks connect: the admin's DSN (migrations), the POS database, each task
    role's DSN (the repr leaves them out: they may hold passwords)."""

    dsn: str = field(repr=False)
    pos_dsn: str = field(repr=False)
    role_dsns: dict[str, str] = field(repr=False)


def _warehouse(settings: Settings) -> Warehouse:
    from trebol.redaction import redact
    from trebol.warehouse import embedded

    dsn = embedded.resolve_dsn(settings)
    pos_dsn = embedded.resolve_pos_dsn(settings, dsn)
    role_dsns = embedded.resolve_role_dsns(settings, dsn)
    where = "embedded" if settings.uses_embedded_warehouse else "external"
    _progress(f"warehouse: {where} PostgreSQL at {redact(dsn)}")
    as_admin = [role for role, role_dsn in role_dsns.items() if role_dsn == dsn]
    if as_admin:
        _progress(f"warehouse: the {', '.join(as_admin)} tasks connect as TREBOL_WAREHOUSE_DSN's "
                  f"user (for least privilege set {', '.join(ROLE_DSN_SETTINGS[r] for r in as_admin)}:"
                  " README, Least privilege)")
    return Warehouse(dsn, pos_dsn, role_dsns)


def command_run(settings: Settings, args: argparse.Namespace) -> int:
    """trebol run: the nightly DAG for one logical date on the exports in TREBOL_SOURCES_DIR."""
    from trebol.extract.load import exports_for_day
    from trebol.extract.run_dates import check_run_date

    run_date: date = args.date
    sources = _check_config()
    check_writable(settings)
    check_run_date(run_date, sources.values(), settings.sources_dir)
    day = run_date - timedelta(days=1)  # the data interval: the day before the logical date
    if not exports_for_day(sources.values(), settings.sources_dir, day):
        print(f"trebol run: no exports dated {day} in {settings.sources_dir} (the data interval of "
              f"{run_date}); deliver them there, set TREBOL_SOURCES_DIR, or try `trebol demo`",
              file=sys.stderr)
        return 2
    return _run(settings, run_date, _warehouse(settings), list(sources), "run")


def command_demo(settings: Settings, args: argparse.Namespace) -> int:
    """trebol demo: simulated sources (generated once, reused), then the nightly DAG on them."""
    from trebol.demo import SimulationSpec, simulate
    from trebol.extract.run_dates import check_run_date

    sources = _check_config()
    check_writable(settings)
    run_date: date = args.date or settings.demo_date
    warehouse = _warehouse(settings)
    spec = SimulationSpec(settings.demo_customers, settings.demo_days, settings.demo_date,
                          settings.demo_seed, settings.timezone)
    result = simulate(spec, settings.sources_dir, warehouse.pos_dsn, progress=_progress)
    state = "reused" if result.reused else "generated"
    _progress(f"sources: {state} demo data for {spec.customers:,} people over {spec.days} days "
              f"({sum(result.counts.values()):,} rows, {result.faults:,} injected faults) in "
              f"{settings.sources_dir} and the POS database")
    check_run_date(run_date, sources.values(), settings.sources_dir)
    if args.campaign_days:
        sent_on = run_date - timedelta(days=args.campaign_days)
        check_run_date(sent_on, sources.values(), settings.sources_dir)
        _run(settings, sent_on, warehouse, list(sources), "demo")
        _answer_campaigns(settings, warehouse, sent_on, run_date)
    return _run(settings, run_date, warehouse, list(sources), "demo")


def _answer_campaigns(settings: Settings, warehouse: Warehouse, sent_on: date, until: date) -> None:
    """The demo world after the push of ``sent_on``: its customers buy, the campaign tool exports
    what became of the sends (trebol.demo.campaign_response)."""
    import psycopg

    from trebol.demo.campaign_response import answer_campaigns

    with psycopg.connect(warehouse.dsn) as conn:
        written = answer_campaigns(conn, settings.sources_dir, settings.file_drop_dir, sent_on, until,
                                   settings.demo_seed, settings.timezone)
    _progress(f"campaigns of {sent_on}: the demo's customers answered until {until} "
              f"({written['order_files']} days of response orders, {written['event_files']} days of "
              "the campaign tool's events)")


def command_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """trebol simulate: write demo source data."""
    from trebol.demo import SimulationSpec, simulate
    from trebol.redaction import redact
    from trebol.settings import validate_dsn
    from trebol.warehouse import embedded

    spec = SimulationSpec(args.customers or settings.demo_customers,
                          args.days or settings.demo_days, args.end or settings.demo_date,
                          settings.demo_seed if args.seed is None else args.seed, settings.timezone,
                          crm_snapshot_retention_days=args.crm_snapshot_retention_days)
    pos_dsn = validate_dsn(args.pos_dsn, "--pos-dsn") if args.pos_dsn else None
    if pos_dsn:
        embedded.check(pos_dsn, "--pos-dsn")
    if args.out:  # a folder of its own: the pipeline's POS database is not touched
        out = Path(args.out)
    else:  # the demo's own sources: TREBOL_SOURCES_DIR and the pipeline's POS database
        out = settings.sources_dir
        pos_dsn = pos_dsn or embedded.resolve_pos_dsn(settings, embedded.resolve_dsn(settings))
    result = simulate(spec, out, pos_dsn, progress=_progress)
    for name, rows in sorted(result.counts.items()):
        print(f"{name:<20} {rows:>10,}")
    where = f"POS in {redact(pos_dsn)}" if pos_dsn else "POS not loaded (give --pos-dsn to load it)"
    print(f"{result.faults:,} injected faults; files in {out}, {where}"
          + (" (reused)" if result.reused else ""))
    return 0


def command_warehouse(settings: Settings, args: argparse.Namespace) -> int:
    """trebol warehouse start|stop|url [--role bi]."""
    from trebol.redaction import redact
    from trebol.warehouse import embedded

    if args.action == "stop":
        if settings.uses_embedded_warehouse:
            stopped = embedded.stop_embedded(settings)
            print("embedded warehouse stopped" if stopped else "embedded warehouse was not running")
        else:
            print("TREBOL_WAREHOUSE_DSN names an external warehouse: nothing to stop")
        return 0
    if getattr(args, "role", None) == "bi" and not settings.uses_embedded_warehouse:
        print("trebol warehouse url --role bi: TREBOL_WAREHOUSE_DSN names an external warehouse, "
              "whose logins are its owner's: make one with `trebol warehouse users add NAME --role "
              "bi` (it prints its URL once)", file=sys.stderr)
        return 2
    dsn = _started_warehouse(settings)
    if args.action == "url" and args.role == "bi":
        import psycopg

        from trebol.warehouse import bi

        with psycopg.connect(dsn, autocommit=True) as conn:
            password = bi.default_bi_login(conn, settings)
        # the URL, password included, is what the user asked for: printed, never logged
        print(bi.tcp_url(settings, dsn, bi.DEFAULT_BI_LOGIN, password))
        return 0
    print(redact(dsn) if args.action == "url" else f"warehouse ready: {redact(dsn)}")
    return 0


def _started_warehouse(settings: Settings) -> str:
    """The admin's DSN, the embedded warehouse started when it is not running (said on stderr)."""
    from trebol.warehouse import embedded

    was_running = (settings.uses_embedded_warehouse
                   and (settings.embedded_data_dir / "postmaster.pid").exists())
    dsn = embedded.resolve_dsn(settings)
    if settings.uses_embedded_warehouse and not was_running:
        print("started the embedded warehouse (`trebol warehouse stop` stops it)", file=sys.stderr)
    return dsn


def command_warehouse_users_add(settings: Settings, args: argparse.Namespace) -> int:
    """trebol warehouse users add NAME --role bi|bi_pii: a BI login with a new password, shown
    once (its URL on stdout), never logged."""
    import psycopg

    from trebol.warehouse import bi

    try:
        bi.check_login_name(args.name)
    except bi.BiLoginError as error:
        print(f"trebol warehouse users add: {error}", file=sys.stderr)
        return 2
    dsn = _started_warehouse(settings)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            password = bi.add_login(conn, args.name, args.role)
    except bi.BiLoginError as error:
        print(f"trebol warehouse users add: {error}", file=sys.stderr)
        return 2
    role = bi.BI_LOGIN_ROLES[args.role]
    print(f"created login {args.name} in role {role}; its password is in the URL below, shown "
          "this once (Trébol keeps no copy): put it in your BI tool's connection", file=sys.stderr)
    print(bi.tcp_url(settings, dsn, args.name, password))
    return 0


def command_docs(settings: Settings, args: argparse.Namespace) -> int:
    """trebol docs [--out DIR] [--serve [--port N]]: the dbt docs site and the Data Docs."""
    from trebol import docs
    from trebol.warehouse import embedded

    dsn = _started_warehouse(settings)
    checker_dsn = embedded.resolve_role_dsns(settings, dsn)["checker"]  # reads, writes nothing
    out = Path(args.out).resolve() if args.out else docs.docs_dir(settings.reports_dir)
    try:
        index = docs.build_docs(settings, checker_dsn, out)
    except docs.DocsError as error:
        print(f"trebol docs: {error}", file=sys.stderr)
        return 1
    print(f"docs: {index}")
    if args.serve:
        try:
            server = docs.serve(out, args.port)
        except OSError as error:
            print(f"trebol docs: --port {args.port}: cannot listen on {docs.SERVE_HOST} "
                  f"({error.strerror or error}); choose another port", file=sys.stderr)
            return 2
        print(f"serving http://{docs.SERVE_HOST}:{args.port}/ (Ctrl-C stops)", flush=True)
        with server, contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


def command_snapshot_confirm(settings: Settings, args: argparse.Namespace) -> int:
    """trebol snapshot confirm SOURCE DATE: let the next run apply a held snapshot as it is."""
    import getpass

    import psycopg

    from trebol.extract.load import confirm_held_snapshot
    from trebol.extract.sources import SourceConfigError, load_sources
    from trebol.warehouse import embedded

    sources = load_sources()
    if args.source not in sources:
        raise SourceConfigError(f"{args.source}: no such source in sources.yml "
                                f"(sources: {', '.join(sorted(sources))})")
    with psycopg.connect(embedded.resolve_dsn(settings), autocommit=True) as conn:
        print(confirm_held_snapshot(conn, sources[args.source], args.date, getpass.getuser()))
    return 0


def _print_sync(report: dict[str, object]) -> None:
    counts = ", ".join(f"{label} {report[key]:,}" for key, label in (
        ("members", "members"), ("held_out", "held out"), ("added", "adds"),
        ("changed", "changes"), ("removed", "removals"), ("failed", "failed")))
    print(f"{report['sync']} ({report['audience']} -> {report['destination']}) "
          f"{report['as_of_date']}: {report['status']}; {counts}")
    if report.get("error"):
        print(f"  {report['error']}")
    examples = report.get("examples") or {}
    for operation in ("add", "update", "remove"):
        for example in examples.get(operation, []):
            print(f"  {operation:<6} {json.dumps(example, ensure_ascii=False, default=str)}")


def command_sync(settings: Settings, args: argparse.Namespace) -> int:
    """trebol sync: what each sync would send for a date (--dry-run), or send it."""
    import psycopg

    from trebol.activation import sync
    from trebol.activation.config import load_activation
    from trebol.activation.endpoints import build_destination
    from trebol.demo.endpoints import demo_endpoints
    from trebol.warehouse import embedded
    from trebol.warehouse.ddl import ACTIVATION

    config = load_activation()
    names = [config.sync(args.sync).name] if args.sync else [spec.name for spec in config.syncs]
    endpoints = contextlib.nullcontext({}) if args.dry_run else demo_endpoints(settings, config)
    with endpoints as endpoint_env, psycopg.connect(embedded.resolve_dsn(settings),
                                                    autocommit=True) as conn:
        os.environ.update(endpoint_env)  # the demo receiver's connection, for this command
        conn.execute(f"set role {ACTIVATION}")  # what the push task may do, no more
        day = args.date or conn.execute(
            "select max(as_of_date) from activation.staged_audiences").fetchone()[0]
        if day is None:
            print("trebol sync: no audience has been staged yet (run the nightly DAG first)",
                  file=sys.stderr)
            return 2
        failed = 0
        for name in names:
            try:
                if args.dry_run:
                    report = sync.preview(conn, config, name, day, full_resync=args.full_resync)
                else:
                    spec = config.sync(name)
                    destination = build_destination(config.destinations[spec.destination],
                                                    settings.file_drop_dir)
                    report = sync.run_sync(conn, config, name, day, f"cli__{day}", destination,
                                           full_resync=args.full_resync)
            except (sync.SyncRefused, sync.DestinationError) as error:
                print(f"{name}: {error}")
                failed += 1
                continue
            _print_sync(report.as_dict())
    return 1 if failed else 0


ERASE_OPTIONS = {"email": "email", "phone": "phone", "card": "loyalty_card",
                 "customer_key": "customer_key"}


def _erase_identifier(args: argparse.Namespace) -> tuple[str, str]:
    """The identifier type and value given (``-``: read from standard input)."""
    option, value = next((option, getattr(args, option)) for option in ERASE_OPTIONS
                         if getattr(args, option) is not None)
    if value == "-":
        value = sys.stdin.readline().rstrip("\n")
    return ERASE_OPTIONS[option], value


def _print_erasure(row: dict[str, object]) -> None:
    print(f"erasure request {row['request_id']} ({row['identifier_type']}, asked by "
          f"{row['requested_by']}): {row['status']}" + (f": {row['error']}" if row.get("error") else ""))
    print(f"  found       {row['customers']} customer key(s), {row['source_records']} source "
          f"record(s); {row['identifiers_suppressed']} identifier(s) suppressed, "
          f"{row['shared_identifiers_kept']} shared with other customers kept")
    for name, result in sorted(dict(row.get("destinations") or {}).items()):
        print(f"  destination {name} ({result['destination']}): removed {result['removed']}, "
              f"failed {result['failed']}")
    tables = dict(row.get("tables") or {})
    if tables:
        print("  warehouse   " + ", ".join(f"{table} {count:,}" for table, count in sorted(tables.items())))


def command_erase(settings: Settings, args: argparse.Namespace) -> int:
    """trebol erase: the erasure DAG's steps for one person, in this process."""
    import getpass
    import uuid

    import psycopg

    from trebol.activation.config import load_activation
    from trebol.activation.destinations.base import DestinationError
    from trebol.activation.endpoints import build_destination
    from trebol.activation.sync import SyncBusy
    from trebol.demo.endpoints import demo_endpoints
    from trebol.erasure import requests
    from trebol.erasure.identifiers import require_salt
    from trebol.extract.sources import load_sources
    from trebol.warehouse import ddl, embedded
    from trebol.warehouse.address import ERASER_ROLE, error_line
    from trebol.warehouse.run_lock import exclusive_run

    kind, value = _erase_identifier(args)
    require_salt(settings)
    config, sources = load_activation(), load_sources()
    dsn = embedded.resolve_dsn(settings)
    with psycopg.connect(dsn, autocommit=True) as admin:  # as prepare_warehouse: the migrations
        ddl.bootstrap(admin)
    eraser_dsn = embedded.resolve_role_dsns(settings, dsn)[ERASER_ROLE]
    request = requests.ErasureRequest(str(uuid.uuid4()), "cli", kind, value,
                                      args.requested_by or getpass.getuser())
    # not while a nightly run builds the marts (it could write the person back): one at a time
    with exclusive_run(dsn, f"trebol erase (pid {os.getpid()})"), \
            demo_endpoints(settings, config) as endpoint_env:
        os.environ.update(endpoint_env)  # the demo receiver's connection, for this command
        try:
            row = requests.run_request(lambda: psycopg.connect(eraser_dsn, autocommit=True),
                                       request, settings, sources.values(), config,
                                       lambda spec: build_destination(spec, settings.file_drop_dir))
        except (DestinationError, SyncBusy) as error:  # a destination or a sync's lock
            with psycopg.connect(eraser_dsn, autocommit=True) as conn:
                _print_erasure(requests.audit_row(conn, request.request_id))
            print(f"trebol erase: {error_line(error)}; run the request again once that is fixed",
                  file=sys.stderr)
            return 1
    _print_erasure(row)
    return 0


def command_settings(settings: Settings, args: argparse.Namespace) -> int:
    """trebol settings: every setting, the value in force (passwords hidden), its default, its
    meaning and, for a whole number, its range."""
    from trebol.redaction import MASK, redact

    width = max(len(doc.name) for doc in SETTINGS) + 1
    for doc in SETTINGS:
        value = getattr(settings, doc.name.removeprefix("TREBOL_").lower())
        if value is None:
            shown = doc.default
        elif doc.name in SECRET_SETTINGS:
            shown = MASK
        elif isinstance(value, tuple):
            shown = ",".join(map(str, value))
        else:
            shown = redact(str(value))
        origin = "set" if os.environ.get(doc.name, "").strip() else "default"
        allowed = allowed_range(doc.name)
        meaning = f"{doc.meaning} ({allowed})" if allowed else doc.meaning
        print(f"{doc.name:<{width}} {shown}  ({origin})\n{'':<{width}} {meaning}")
    return 0


def command_clv_fit(settings: Settings, args: argparse.Namespace) -> int:
    """trebol clv fit: BG/NBD and Gamma-Gamma on a transaction export, printed as JSON."""
    import pandas as pd

    from trebol.clv import fitting

    def bad(message: str) -> int:
        print(f"trebol clv fit: {message}", file=sys.stderr)
        return 2

    if args.holdout_end is not None and args.holdout_end <= args.calibration_end:
        return bad("--holdout-end must be after --calibration-end")
    try:
        frame = pd.read_csv(args.transactions, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        return bad(f"cannot read {args.transactions}: {error}")
    columns = (args.customer_col, args.date_col, args.amount_col)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        return bad(f"{args.transactions} has no column {', '.join(map(repr, missing))} "
                   f"(columns: {', '.join(frame.columns)})")
    dates = pd.to_datetime(frame[args.date_col], errors="coerce", format="mixed")
    if dates.isna().any():
        row = int(dates.isna().to_numpy().argmax())
        return bad(f"column {args.date_col!r}: {frame[args.date_col].iloc[row]!r} on data row "
                   f"{row + 1} is not a date")
    amounts = pd.to_numeric(frame[args.amount_col], errors="coerce")
    if amounts.isna().any():
        row = int(amounts.isna().to_numpy().argmax())
        return bad(f"column {args.amount_col!r}: {frame[args.amount_col].iloc[row]!r} on data row "
                   f"{row + 1} is not a number")
    frame = frame.assign(**{args.date_col: dates, args.amount_col: amounts})
    unit_days = 7.0 if args.time_unit == "week" else 1.0
    try:
        summary = fitting.summarize_transactions(frame, *columns, args.calibration_end,
                                                 args.holdout_end, unit_days=unit_days)
        bg = fitting.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
        gg = fitting.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    except fitting.CLVFitError as error:
        print(f"trebol clv fit: {error}", file=sys.stderr)
        return 1
    result: dict[str, object] = {
        "customers": len(summary), "time_unit": args.time_unit,
        "calibration_end": args.calibration_end.isoformat(),
        "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b,
                  "log_likelihood": bg.log_likelihood, "n": bg.n, "repeat_customers": bg.n_repeat,
                  "fit_seconds": round(bg.fit_seconds, 4)},
        "gamma_gamma": {"p": gg.p, "q": gg.q, "v": gg.v, "log_likelihood": gg.log_likelihood,
                        "n": gg.n, "excluded_non_positive": gg.excluded_non_positive,
                        "fit_seconds": round(gg.fit_seconds, 4)},
    }
    if args.holdout_end is not None:
        length = (args.holdout_end - args.calibration_end).days / unit_days
        predicted = bg.expected_purchases(length, summary["frequency"], summary["recency"],
                                          summary["T"])
        result["holdout"] = {"end": args.holdout_end.isoformat(), "length": length,
                             "predicted_repeat_purchases": float(predicted.sum()),
                             "actual_repeat_purchases": int(summary["holdout_frequency"].sum())}
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with help for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="trebol", description="Trébol: customer-loyalty data pipeline. "
        "Settings come from the environment; see `trebol settings`.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the nightly Airflow DAG for one date on your exports",
                              description="Check the configuration (TREBOL_CONFIG_DIR), start the "
                              "warehouse (embedded unless TREBOL_WAREHOUSE_DSN is set), run the "
                              "nightly DAG with real Airflow for the logical date (the day before "
                              "it is the data interval) on the exports in TREBOL_SOURCES_DIR and "
                              "the POS database, and print a summary. Never generates data: with no "
                              "export dated in the interval it stops with one line.")
    run.add_argument("--date", type=_date, required=True, help="logical date YYYY-MM-DD")
    run.set_defaults(handler=command_run)

    demo = commands.add_parser("demo", help="generate the demo sources, then run the nightly DAG",
                               description="Generate seeded demo source systems (reused when "
                               "already there; see `trebol simulate`) into TREBOL_SOURCES_DIR and "
                               "the POS database, then do what `trebol run` does. The simulator "
                               "only replaces data it created: a POS schema or export folders it "
                               "did not write make it stop with one line, changing nothing.")
    demo.add_argument("--date", type=_date, help="logical date YYYY-MM-DD (default TREBOL_DEMO_DATE)")
    demo.add_argument("--campaign-days", type=_non_negative, default=14, metavar="N",
                      help="first run the date N days before, whose push the demo's customers and "
                      "campaign tool then answer (response purchases, the tool's event export), so "
                      "that the date's run measures those campaigns against their holdouts; 0: "
                      "one run only (default 14)")
    demo.set_defaults(handler=command_demo)

    sim = commands.add_parser("simulate", help="generate demo source data",
                              description="Write seeded, reproducible demo sources: e-commerce, "
                              "loyalty and CRM exports, the POS database, and their ground truth "
                              "(identities, faults, behaviour). Without --out: the demo's own "
                              "sources (TREBOL_SOURCES_DIR and the pipeline's POS database). With "
                              "--out: that folder only, and the POS database only with --pos-dsn. "
                              "Only data the simulator created is ever replaced.")
    sim.add_argument("--customers", type=int, help="people to simulate (default TREBOL_DEMO_CUSTOMERS)")
    sim.add_argument("--days", type=int, help="days of history (default TREBOL_DEMO_DAYS)")
    sim.add_argument("--end", type=_date, help="first day after the history (default TREBOL_DEMO_DATE)")
    sim.add_argument("--seed", type=int, help="random seed (default TREBOL_DEMO_SEED)")
    sim.add_argument("--crm-snapshot-retention-days", type=_positive, metavar="N",
                     help="keep only the CRM contact snapshots (full daily exports) of the N "
                     "newest days, as a real CRM drop folder does (default: every day's); for "
                     "large simulations: 1 million people over 3 years would otherwise write "
                     "about a billion snapshot rows")
    sim.add_argument("--out", help="output folder (default TREBOL_SOURCES_DIR)")
    sim.add_argument("--pos-dsn", help="postgresql:// URL of a database for the simulated POS "
                     "(default: none with --out, the pipeline's POS database without)")
    sim.set_defaults(handler=command_simulate)

    wh = commands.add_parser("warehouse", help="start, stop or locate the warehouse; BI logins",
                             description="The warehouse: the embedded one (unless "
                             "TREBOL_WAREHOUSE_DSN names an external one) listens on its private "
                             "socket and, for BI tools, on 127.0.0.1 at TREBOL_WAREHOUSE_PORT, "
                             "where every login needs its password.")
    wh_commands = wh.add_subparsers(dest="action", required=True, metavar="ACTION")
    wh_commands.add_parser("start", help="start the embedded warehouse (or check the external one)")
    wh_commands.add_parser("stop", help="stop the embedded warehouse")
    url = wh_commands.add_parser(
        "url", help="print the warehouse's URL",
        description="Print the admin's URL (password hidden), starting the embedded warehouse "
        "when it is not running, which it says on stderr. With --role bi: the TCP URL a BI tool "
        "connects with, as the embedded warehouse's own BI login trebol_bi_login (in bi_reader: "
        "the marts without direct identifiers, the reference seeds), password included: that URL "
        "is what you asked for, so it is printed whole (its password is kept in "
        "TREBOL_HOME/secrets). On an external warehouse, make a login with `users add`.")
    url.add_argument("--role", choices=("bi",), help="bi: the URL of the BI login, for a BI tool")
    wh.set_defaults(handler=command_warehouse)
    users = wh_commands.add_parser("users", help="BI logins",
                                   description="Logins for the people and BI tools that read the "
                                   "warehouse.")
    users_commands = users.add_subparsers(dest="users_action", required=True, metavar="ACTION")
    add = users_commands.add_parser(
        "add", help="create a BI login with a generated password, shown once",
        description="Create the login NAME in role bi_reader (--role bi: the marts without direct "
        "identifiers, i.e. names, emails, phones, postal codes and source systems' ids, and the "
        "reference seeds) or bi_pii_reader (--role bi_pii: also those, for support and the CRM "
        "team), with a generated password, and print its URL (127.0.0.1 at "
        "TREBOL_WAREHOUSE_PORT on the embedded warehouse; TREBOL_WAREHOUSE_DSN's host otherwise) "
        "with the password, this once: Trébol keeps no copy and logs nothing of it. Applies the "
        "warehouse's pending migrations first. To remove a login: `drop role NAME` as the admin.")
    add.add_argument("name", help="the login's name: lower-case letters, digits and _")
    add.add_argument("--role", required=True, choices=("bi", "bi_pii"),
                     help="bi: bi_reader; bi_pii: bi_pii_reader (contact details too)")
    add.set_defaults(handler=command_warehouse_users_add)

    docs = commands.add_parser(
        "docs", help="build the dbt docs site (and link the Data Docs); optionally serve it",
        description="Build the dbt docs site of the warehouse (dbt docs generate --static, with the "
        "project's profile, as the checks' read-only role, for the newest as-of date built) into "
        "TREBOL_REPORTS_DIR/docs, beside a copy of the newest run's Great Expectations Data Docs "
        "and an index page linking both; the run summary links it. With --serve, serve that "
        "folder on 127.0.0.1 until interrupted.")
    docs.add_argument("--out", help="folder of the site (default TREBOL_REPORTS_DIR/docs)")
    docs.add_argument("--serve", action="store_true", help="then serve it on 127.0.0.1")
    docs.add_argument("--port", type=int, default=8580,
                      help="port of --serve on 127.0.0.1 (default 8580)")
    docs.set_defaults(handler=command_docs)

    st = commands.add_parser("settings", help="list every setting with the value in force",
                             description="List the environment settings Trébol reads, each with "
                             "the value in force (set or default; passwords hidden), its meaning "
                             "and, for a whole number, its range. Every command stops at start "
                             "with one line on a wrong value, or on a TREBOL_ variable that is no "
                             "setting (naming the closest one).")
    st.set_defaults(handler=command_settings)

    snap = commands.add_parser("snapshot", help="confirm a snapshot the loader held",
                               description="A snapshot export that would close more than its "
                               "source's max_closed_share of the current records (a truncated or "
                               "empty file) is held: nothing of it applied, its rows quarantined, "
                               "the raw checks failing. Deliver a corrected file for the date (it "
                               "replaces that day), or, if the records really are gone, confirm "
                               "it: the next run applies it as it is.")
    snap_commands = snap.add_subparsers(dest="snapshot_command", required=True, metavar="ACTION")
    confirm = snap_commands.add_parser("confirm", help="let the next run apply a held snapshot")
    confirm.add_argument("source", help="the snapshot source, as named in sources.yml")
    confirm.add_argument("date", type=_date, help="the date of the snapshot file, YYYY-MM-DD")
    confirm.set_defaults(handler=command_snapshot_confirm)

    sy = commands.add_parser(
        "sync", help="show (--dry-run) or send each sync's adds, changes and removals",
        description="Each sync of destinations.yml diffs its staged audience (the nightly "
        "run's stage_audiences, as validated by its checks) against what it last delivered. "
        "With --dry-run: print per sync the members, held out, adds, changes and removals, with "
        "examples, and send nothing. Without: send them now, as the nightly push task does "
        "(the destinations' Airflow connections must be defined, e.g. AIRFLOW_CONN_<ID>).")
    sy.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    sy.add_argument("--date", type=_date,
                    help="as-of date of the staged audiences (default: the latest staged)")
    sy.add_argument("--sync", help="only this sync (default: every sync)")
    sy.add_argument("--full-resync", action="store_true",
                    help="send every member again, not only the changes (removals still removed)")
    sy.set_defaults(handler=command_sync)

    erase = commands.add_parser(
        "erase", help="erase a person (GDPR): warehouse, destinations, suppression at load",
        description="Run an erasure request for the person one identifier names, the steps of "
        "the DAG trebol_erasure in this process (README, Erasure requests): record it in "
        "audit.erasure_requests, add the salted hashes of every identifier of the person to the "
        "suppression list (later loads skip their rows), remove them from every sync's "
        "destination (Mailchimp deletes them for good), and delete them from every layer of the "
        "warehouse. Needs TREBOL_ERASURE_SALT. Prints what was found and removed, never the "
        "identifier. Give the value as - to read it from standard input (out of the shell's "
        "history). The source systems (POS database, export files) are their owners' to erase.")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the person's email address")
    who.add_argument("--phone", help="the person's phone (read as staging reads it: E.164)")
    who.add_argument("--card", help="the person's loyalty card number")
    who.add_argument("--customer-key", dest="customer_key", help="the person's customer key")
    erase.add_argument("--requested-by", help="who asked (an operator, a ticket), for the audit "
                       "(default: your user name)")
    erase.set_defaults(handler=command_erase)

    from trebol.airflow.commands import add_commands

    add_commands(commands, _date)

    clv_parser = commands.add_parser("clv", help="customer lifetime value models",
                                     description="Customer lifetime value (BG/NBD and Gamma-Gamma).")
    clv_commands = clv_parser.add_subparsers(dest="clv_command", required=True, metavar="ACTION")
    fit = clv_commands.add_parser(
        "fit", help="fit BG/NBD and Gamma-Gamma on a transaction CSV",
        description="Read a transaction export (CSV with a header), summarise each customer "
        "(frequency = repeat purchase days: several purchases on one day are one occasion; "
        "recency and age T as fractional time units), fit BG/NBD and Gamma-Gamma by maximum "
        "likelihood and print one JSON object; with --holdout-end, also the predicted and "
        "actual repeat purchases in the holdout.")
    fit.add_argument("--transactions", required=True, help="CSV file of transactions")
    fit.add_argument("--customer-col", required=True, help="column of the customer id")
    fit.add_argument("--date-col", required=True, help="column of the transaction date")
    fit.add_argument("--amount-col", required=True, help="column of the amount")
    fit.add_argument("--calibration-end", required=True, type=_date,
                     help="last day of the calibration period (inclusive), YYYY-MM-DD")
    fit.add_argument("--holdout-end", type=_date, help="last day of the holdout period, YYYY-MM-DD")
    fit.add_argument("--time-unit", choices=("week", "day"), default="week",
                     help="time unit of recency, T and alpha (default week: days / 7)")
    fit.set_defaults(handler=command_clv_fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trebol`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return args.handler(settings, args)
    except (SettingsError, ConfigError) as error:
        print(f"trebol: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from trebol.demo import SimulatorRefused
        from trebol.extract.run_dates import RunDateOutOfRange
        from trebol.warehouse.run_lock import RunInProgress

        if isinstance(error, SimulatorRefused | RunDateOutOfRange | RunInProgress):
            print(f"trebol: {error}", file=sys.stderr)
            return 2
        from trebol.airflow.backfill import BackfillError
        from trebol.airflow.local_airflow import AirflowRunning, AirflowServiceError

        if isinstance(error, BackfillError | AirflowServiceError | AirflowRunning):
            print(f"trebol: {error}", file=sys.stderr)
            return 2
        from trebol.airflow.local_runner import DagRunFailed

        if isinstance(error, DagRunFailed):
            print(f"trebol: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
