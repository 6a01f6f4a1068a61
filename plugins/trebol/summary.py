"""The run summary: rows per layer, customers per segment, checks, pushes, report locations."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from trebol.docs import docs_dir
from trebol.quality import gx_project, results
from trebol.report import report_path
from trebol.warehouse.catalog import relation_exists

# the layers whose tables the summary counts; not staging: its models are views over raw (rename
# and cast, the versions as of the run), and counting a view evaluates it: at 200,000 people the
# 17 staging views took 4.9 s of every run's summary, the tables of the four layers 0.9 s
LAYERS = ("raw", "marts", "audiences", "activation")


def rows_per_layer(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """Row count of every table in each layer schema (views are not counted: see ``LAYERS``)."""
    relations = conn.execute("""
        select table_schema, table_name from information_schema.tables
        where table_schema = any(%s) and table_type = 'BASE TABLE'
        order by table_schema, table_name""",
        (list(LAYERS),)).fetchall()
    counts: dict[str, dict[str, int]] = {layer: {} for layer in LAYERS}
    for schema, name in relations:
        query = sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema),
                                                              sql.Identifier(name))
        counts[schema][name] = conn.execute(query).fetchone()[0]
    return counts


SEGMENTATIONS = ("lifecycle_stage", "rfm_segment", "value_tier")


def customers_per_segment(conn: psycopg.Connection, as_of_date: date) -> dict[str, dict[str, int]]:
    """Customers per segment as of the date, for each segmentation of customer_segments."""
    sizes: dict[str, dict[str, int]] = {}
    for column in SEGMENTATIONS:
        query = sql.SQL("select {0}, count(*) from marts.customer_segments where as_of_date = %s "
                        "group by {0} order by count(*) desc, {0}").format(sql.Identifier(column))
        sizes[column] = dict(conn.execute(query, (as_of_date,)).fetchall())
    return sizes


def identity(conn: psycopg.Connection) -> dict[str, int]:
    """How identity resolution joined the source records: records, customers, shared identifiers."""
    records, customers = conn.execute(
        "select count(*), count(distinct customer_key) from marts.customer_source_keys").fetchone()
    shared = conn.execute("select count(*) from intermediate.int_identity__shared_identifiers").fetchone()[0]
    return {"source_records": records, "customers": customers, "shared_identifiers": shared}


def syncs(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    """The sync runs of this Airflow run (never an earlier run's), by sync: status, members,
    held out, added, changed, removed, failed, the delivery and the error."""
    columns = ("sync", "audience", "destination", "status", "members", "held_out", "added",
               "changed", "removed", "failed", "delivery", "error")
    # a sync may take two runs in one Airflow run (an interrupted one resumed, then the rest):
    # counts summed, the rest from the latest
    rows = conn.execute("""
        select sync_name, audience, destination,
               (array_agg(status order by sync_run_id desc))[1],
               (array_agg(members order by sync_run_id desc))[1],
               (array_agg(held_out order by sync_run_id desc))[1],
               sum(added)::int, sum(changed)::int, sum(removed)::int, sum(failed)::int,
               (array_agg(delivery order by sync_run_id desc) filter (where delivery <> ''))[1],
               (array_agg(error order by sync_run_id desc))[1]
        from activation.sync_runs where run_id = %s
        group by sync_name, audience, destination order by sync_name""", (run_id,)).fetchall()
    return [dict(zip(columns, row, strict=True)) for row in rows]


# marts that accumulate across run dates: their content depends on which dates ran before
# (clv_model_runs also records fit times, data_quality_results the Airflow run ids)
HISTORY_TABLES = ("segment_history", "segment_migration", "customer_clv", "clv_model_runs",
                  "data_quality_results")
# registers, current by nature (README, "Time"): which keys were issued, to which source records,
# when a customer was last seen by a run; out of the checksum of the marts as of a date
REGISTER_TABLES = ("customer_keys", "customer_source_keys")
ALL_ROWS = sql.SQL("true")


def _table_digest(conn: psycopg.Connection, table: str, where: sql.Composable = ALL_ROWS) -> str:
    """md5 of the row count and the exact (numeric) sum of the rows' 64-bit hashes: the same
    rows in any order give the same digest, without sorting them (the md5 over the sorted rows'
    md5s it replaces took 15.2 s on 5 million rows, this 1.7 s; summarize took 128 s at 1 million
    people)."""
    query = sql.SQL("select md5(count(*) || ':' || coalesce(sum(hash_record_extended(t, 0)::numeric), 0)) "
                    "from marts.{} t where {}").format(sql.Identifier(table), where)
    return conn.execute(query).fetchone()[0]


def marts_digests(conn: psycopg.Connection) -> dict[str, str]:
    """The digest of the rows of each table in ``marts`` as of the run's date: all but the
    history tables and the registers."""
    tables = [row[0] for row in conn.execute("""
        select table_name from information_schema.tables
        where table_schema = 'marts' and table_type = 'BASE TABLE' order by table_name""")
        if row[0] not in HISTORY_TABLES + REGISTER_TABLES]
    return {table: _table_digest(conn, table) for table in tables}


def marts_checksum(conn: psycopg.Connection, digests: dict[str, str] | None = None) -> str:
    """One md5 over :func:`marts_digests`: equal checksums, equal marts as of the run's date."""
    digests = marts_digests(conn) if digests is None else digests
    return hashlib.md5("|".join(f"{table}:{md5}" for table, md5 in digests.items()).encode()).hexdigest()


def history_checksum(conn: psycopg.Connection, as_of_date: date) -> str:
    """Digest of the segment_history rows of one as-of date."""
    return _table_digest(conn, "segment_history", sql.SQL("as_of_date = {}").format(sql.Literal(as_of_date)))


def predicted_value(conn: psycopg.Connection, as_of_date: date) -> dict[str, Any]:
    """The CLV run of ``as_of_date``: customers per churn-risk band, total predicted CLV and the
    digest of its customer_clv rows (empty when there is none)."""
    if not relation_exists(conn, "marts.customer_clv"):
        return {}
    bands = dict(conn.execute("""select churn_risk_band, count(*) from marts.customer_clv
        where as_of_date = %s group by 1 order by 2 desc, 1""", (as_of_date,)).fetchall())
    total = conn.execute("select coalesce(sum(predicted_clv), 0) from marts.customer_clv "
                         "where as_of_date = %s", (as_of_date,)).fetchone()[0]
    where = sql.SQL("as_of_date = {}").format(sql.Literal(as_of_date))
    return {"churn_risk_band": bands, "predicted_clv_total": float(total),
            "checksum": _table_digest(conn, "customer_clv", where)}


CAMPAIGN_COLUMNS = ("campaign_id", "audience", "sent_on", "is_window_complete", "treated_members",
                    "holdout_members", "open_rate", "treated_purchase_rate", "holdout_purchase_rate",
                    "purchase_rate_lift", "purchase_rate_lift_low", "purchase_rate_lift_high",
                    "incremental_revenue", "incremental_revenue_low", "incremental_revenue_high",
                    "incremental_margin", "incremental_margin_low", "incremental_margin_high")


def campaigns(conn: psycopg.Connection, limit: int = 5) -> list[dict[str, Any]]:
    """The latest campaigns' results against their holdouts (marts.campaign_performance, whole
    campaigns), newest first: arms, purchase rates, lift and incremental revenue and margin with
    their 95% intervals (None where an arm is too small)."""
    if not relation_exists(conn, "marts.campaign_performance"):
        return []
    query = sql.SQL("select {} from marts.campaign_performance where segment_type = 'all' "
                    "order by sent_on desc, audience limit %s").format(
        sql.SQL(", ").join(map(sql.Identifier, CAMPAIGN_COLUMNS)))
    rows = [dict(zip(CAMPAIGN_COLUMNS, row, strict=True)) for row in conn.execute(query, (limit,))]
    return [{**row, "sent_on": row["sent_on"].isoformat()} for row in rows]


def activation_outcome(checks: dict[str, Any], synced: list[dict[str, Any]]) -> str:
    """Whether this run pushed, and if not, why (from this run's facts only)."""
    if checks["errors"]:
        return "stopped by the quality gate"
    if synced:
        failed = [sync["sync"] for sync in synced if sync["status"] == "failed"]
        return f"pushed ({len(failed)} of {len(synced)} syncs failed)" if failed else "pushed"
    return "not run (a task before the push failed or has not run)"


def build_summary(conn: psycopg.Connection, as_of_date: date, report_dir: Path,
                  run_id: str) -> dict[str, Any]:
    """Collect the summary of the run ``run_id`` for ``as_of_date`` and write it as summary.json."""
    checks = results.run_outcome(conn, run_id)
    synced = syncs(conn, run_id)
    digests = marts_digests(conn)
    summary = {
        "as_of_date": as_of_date.isoformat(),
        "rows_per_layer": rows_per_layer(conn),
        "customers_per_segment": customers_per_segment(conn, as_of_date),
        "identity": identity(conn),
        "checks": checks,
        "activation": activation_outcome(checks, synced),
        "syncs": synced,
        "marts_checksum": marts_checksum(conn, digests),
        # which table changed, when the checksum did
        "marts_digests": digests,
        "history_checksum": history_checksum(conn, as_of_date),
        "predicted_value": predicted_value(conn, as_of_date),
        "campaigns": campaigns(conn),
        "reports": {"folder": str(report_dir),
                    "run_report": str(report_path(report_dir)),
                    "data_docs": str(gx_project.data_docs_dir(report_dir) / "index.html"),
                    "docs": docs_site(report_dir)},
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def docs_site(report_dir: Path) -> str | None:
    """The warehouse's docs site (``trebol docs``, beside the runs' report folders), if built."""
    index = docs_dir(report_dir.parent) / "index.html"
    return str(index) if index.is_file() else None


def render(summary: dict[str, Any]) -> str:
    """The summary as a few human-readable lines."""
    lines = [f"Trébol nightly run as of {summary['as_of_date']}"]
    for layer, tables in summary["rows_per_layer"].items():
        parts = ", ".join(f"{name} {count:,}" for name, count in tables.items()) or "(empty)"
        lines.append(f"  {layer:<11} {sum(tables.values()):>9,} rows  ({parts})")
    people = summary["identity"]
    lines.append(f"  customers   {people['customers']:,} from {people['source_records']:,} source records "
                 f"({people['shared_identifiers']:,} shared identifiers left unjoined)")
    for column, sizes in summary["customers_per_segment"].items():
        label = column.replace("_", " ")
        lines.append(f"  {label:<15} " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    checks = summary["checks"]
    lines.append(f"  checks      {checks['passed']} passed, {checks['failed']} failed "
                 f"({len(checks['errors'])} errors, {len(checks['warnings'])} warnings); "
                 f"activation {summary['activation']}")
    lines += [f"    error     {message}" for message in checks["errors"]]
    lines += [f"    warning   {message}" for message in checks["warnings"]]
    for sync in summary["syncs"]:
        counts = ", ".join(f"{label} {sync[key]:,}" for key, label in (
            ("added", "added"), ("changed", "changed"), ("removed", "removed"),
            ("held_out", "held out"), ("failed", "failed")))
        lines.append(f"  sync        {sync['sync']} ({sync['destination']}): {sync['status']}; "
                     f"{counts}" + (f"; {sync['error']}" if sync["error"] else ""))
    clv = summary.get("predicted_value") or {}
    if clv.get("churn_risk_band"):
        lines.append("  churn risk  " + ", ".join(f"{k} {v:,}" for k, v in clv["churn_risk_band"].items())
                     + f"; predicted CLV (margin) {clv['predicted_clv_total']:,.0f}")
    lines += [f"  campaign    {render_campaign(campaign)}" for campaign in summary.get("campaigns", [])]
    lines.append(f"  marts md5   {summary['marts_checksum']}")
    if run_report := summary["reports"].get("run_report"):
        lines.append(f"  run report  {run_report}")
    lines.append(f"  reports     {summary['reports']['folder']}")
    lines.append(f"  data docs   {summary['reports']['data_docs']}")
    docs = summary["reports"].get("docs")
    lines.append(f"  docs site   {docs}" if docs else
                 "  docs site   `trebol docs` builds the warehouse's docs for BI (dbt docs, Data Docs)")
    return "\n".join(lines)


def _interval(low: float | None, high: float | None, scale: float, form: str) -> str:
    return "" if low is None or high is None else f" [{low * scale:{form}}, {high * scale:{form}}]"


def render_campaign(campaign: dict[str, Any]) -> str:
    """One campaign's result on a line: arms, purchase rates, lift and incremental margin with
    their 95% intervals."""
    window = "" if campaign["is_window_complete"] else ", window still open"
    line = (f"{campaign['campaign_id']} ({campaign['treated_members']:,} treated, "
            f"{campaign['holdout_members']:,} held out{window})")
    if campaign["purchase_rate_lift"] is None:
        return line + ": no holdout, no lift"
    line += (f": bought {campaign['treated_purchase_rate']:.1%} vs {campaign['holdout_purchase_rate']:.1%}, "
             f"lift {campaign['purchase_rate_lift'] * 100:+.1f} pts"
             + _interval(campaign["purchase_rate_lift_low"], campaign["purchase_rate_lift_high"], 100,
                         "+.1f"))
    if campaign["incremental_margin"] is not None:
        line += (f"; incremental margin {campaign['incremental_margin']:+,.0f} EUR"
                 + _interval(campaign["incremental_margin_low"], campaign["incremental_margin_high"], 1,
                             "+,.0f"))
    return line

