"""The whole-pipeline benchmark's pure parts: dbt timings grouped by model folder, ratios,
targets, the markdown table (tests/bench/pipeline_stats.py)."""

from __future__ import annotations

from pathlib import Path

from tests.bench import pipeline_stats as stats

FOLDERS = {"stg_pos__tickets": "staging/pos/stg_pos__tickets",
           "int_identity__clusters": "intermediate/identity/int_identity__clusters",
           "fct_transactions": "marts/fct_transactions",
           "customer_rfmt": "marts/customers/customer_rfmt",
           "loyalty_members": "marts/loyalty/loyalty_members"}


def _result(unique_id: str, seconds: float, start: str, end: str, rows: int | None = None) -> dict:
    return {"unique_id": unique_id, "execution_time": seconds,
            "adapter_response": {} if rows is None else {"rows_affected": rows},
            "timing": [{"name": "execute", "started_at": f"2026-12-05T10:00:{start}Z",
                        "completed_at": f"2026-12-05T10:00:{end}Z"}]}


def test_model_folders_names_each_model_by_its_path(tmp_path: Path) -> None:
    (tmp_path / "staging" / "pos").mkdir(parents=True)
    (tmp_path / "staging" / "pos" / "stg_pos__tickets.sql").write_text("select 1")
    (tmp_path / "fct_transactions.sql").write_text("select 1")
    assert stats.model_folders(tmp_path) == {"stg_pos__tickets": "staging/pos/stg_pos__tickets",
                                             "fct_transactions": "fct_transactions"}


def test_dbt_stage_by_folder_and_resource_type() -> None:
    assert stats.dbt_stage("model.trebol.stg_pos__tickets", FOLDERS) == "dbt staging"
    assert stats.dbt_stage("model.trebol.int_identity__clusters", FOLDERS) == "dbt identity"
    assert stats.dbt_stage("model.trebol.fct_transactions", FOLDERS) == "dbt facts"
    assert stats.dbt_stage("model.trebol.customer_rfmt", FOLDERS) == "dbt value marts"
    assert stats.dbt_stage("model.trebol.loyalty_members", FOLDERS) == "dbt other marts"
    assert stats.dbt_stage("test.trebol.not_null_x.abc", FOLDERS) == "dbt data tests"
    assert stats.dbt_stage("seed.trebol.rfm_segments", FOLDERS) == "dbt seeds"
    assert stats.dbt_stage("model.trebol.unknown", FOLDERS) == "dbt other models"


def test_group_dbt_results_sums_node_times_and_spans_side_by_side_nodes() -> None:
    results = [_result("model.trebol.stg_pos__tickets", 2.0, "00", "02"),
               _result("model.trebol.fct_transactions", 3.0, "01", "04", rows=100),
               _result("model.trebol.customer_rfmt", 1.5, "04", "05.5", rows=10),
               _result("model.trebol.fct_transactions", 1.0, "03", "05", rows=-1),
               _result("test.trebol.not_null_x.abc", 0.25, "00", "09", rows=1),
               _result("operation.trebol.trebol-on-run-end-0", 0.5, "00", "09")]
    grouped = stats.group_dbt_results(results, FOLDERS)
    # tests and hooks: their own times (they interleave with the models), no rows
    assert grouped["dbt data tests"] == {"nodes": 1, "node_s": 0.25, "rows": 0, "span_s": 0.25}
    assert grouped["dbt hooks"]["span_s"] == 0.5
    assert grouped["dbt facts"] == {"nodes": 2, "node_s": 4.0, "rows": 100, "span_s": 4.0}
    assert grouped["dbt staging"]["span_s"] == 2.0
    assert grouped["dbt value marts"]["rows"] == 10
    merged = stats.merge_stages(grouped, {"dbt facts": {"nodes": 1, "node_s": 0.5, "rows": 1,
                                                        "span_s": 0.5}})
    assert merged["dbt facts"] == {"nodes": 3, "node_s": 4.5, "rows": 101, "span_s": 4.5}


def test_ratios_rates_and_targets() -> None:
    assert stats.ratio(30.0, 4.0) == 7.5
    assert stats.ratio(1.0, 0.0) is None
    assert stats.rate(1000, 4.0) == 250
    assert stats.rate(1000, 0.0) is None
    assert stats.task_label("extract_load", 3, "pos_tickets") == "extract_load[pos_tickets]"
    assert stats.task_label("fit_clv", -1, None) == "fit_clv"
    met = stats.targets(full_s=80.0, increment_s=8.0, copy_s=6.0, aggregate_s=4.0,
                        peak_mb=1000.0, checksums_equal=True)
    assert met["full_build_over_copy_plus_aggregate"] == {"value": 8.0, "target": 8.0, "met": True}
    assert met["increment_over_full_build"]["met"] is True
    missed = stats.targets(full_s=90.0, increment_s=10.0, copy_s=6.0, aggregate_s=4.0,
                           peak_mb=5000.0, checksums_equal=None)
    assert [t["met"] for t in missed.values()] == [False, False, False, False]
    # saved after the full build, before any increment ran
    partial = stats.targets(full_s=80.0, increment_s=None, copy_s=6.0, aggregate_s=4.0,
                            peak_mb=1000.0, checksums_equal=None)
    assert partial["increment_over_full_build"] == {"value": None, "target": 0.10, "met": False}


def test_markdown_table() -> None:
    table = stats.markdown_table([{"stage": "fit_clv", "seconds": 2.5, "rows": 1200}],
                                 ("stage", "seconds", "rows", "x_floor"))
    assert table.splitlines() == ["| stage | seconds | rows | x_floor |", "|---|---|---|---|",
                                  "| fit_clv | 2.50 | 1,200 |  |"]


def test_differing_marts_names_each_mart_whose_digest_moved() -> None:
    first = {"marts_digests": {"dim_customers": "a", "customer_clv": "b", "fct_transactions": "c"}}
    again = {"marts_digests": {"dim_customers": "a", "customer_clv": "x", "segment_history": "d"}}
    assert stats.differing_marts(first, again) == ["customer_clv", "fct_transactions",
                                                   "segment_history"]
    assert stats.differing_marts(first, first) == []
    assert stats.differing_marts({}, {"marts_digests": None}) == []
