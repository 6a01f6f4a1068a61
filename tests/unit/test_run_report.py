"""The run report's pure parts: the task timeline's records, what the page says first, the
specs embedded in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trebol.report import charts, page, timeline
from trebol.report.timeline import TaskSpan

START = datetime(2026, 6, 29, 22, 0, tzinfo=UTC)
RUN = "scheduled__2026-06-29T22:00:00+00:00~1"


def _span(task_id: str, map_index: int, label: str, state: str, minute: int, seconds: float,
          try_number: int = 1) -> TaskSpan:
    start = START + timedelta(minutes=minute)
    return TaskSpan(task_id, map_index, label, state, try_number, start, start + timedelta(seconds=seconds))


def test_the_timeline_keeps_each_task_instances_last_try_and_adds_the_tasks_that_never_ran(
        tmp_path: Path) -> None:
    timeline.write_span(tmp_path, RUN, _span("extract_load", 1, "extract_load[pos_tickets]",
                                             "up_for_retry", 1, 3.0))
    timeline.write_span(tmp_path, RUN, _span("extract_load", 1, "extract_load[pos_tickets]",
                                             "success", 2, 4.5, try_number=2))
    timeline.write_span(tmp_path, RUN, _span("prepare_warehouse", -1, "prepare_warehouse",
                                             "success", 0, 5.0))
    # another attempt of the run (cleared once more) is not this one's
    timeline.write_span(tmp_path, RUN + "x", _span("fit_clv", -1, "fit_clv", "failed", 3, 1.0))
    states = {"prepare_warehouse": "success", "extract_load_1": "success",
              "check_raw_batches": "failed", "push_audiences": "upstream_failed"}
    spans = timeline.read_timeline(tmp_path, RUN, states)
    assert [(s.label, s.state, s.try_number, s.seconds) for s in spans] == [
        ("prepare_warehouse", "success", 1, 5.0),
        ("extract_load[pos_tickets]", "success", 2, 4.5),
        ("check_raw_batches", "failed", None, None),
        ("push_audiences", "upstream_failed", None, None),
    ]
    # the run id's ':' and '+' do not reach the file names
    assert all(":" not in path.name and "+" not in path.name
               for path in (tmp_path / timeline.TIMELINE_DIR).iterdir())


def test_a_failed_run_says_what_failed_and_which_syncs_were_not_pushed() -> None:
    spans = [_span("dbt_build", -1, "dbt_build", "success", 0, 10),
             TaskSpan("check_raw_batches", -1, "check_raw_batches", "failed"),
             TaskSpan("push_audiences", -1, "push_audiences", "upstream_failed"),
             TaskSpan("fail_run", -1, "fail_run", "failed")]
    summary = {"syncs": [], "checks": {"errors": ["raw_batches: quarantined_share above 0.2"]}}
    status = page.run_status(spans, summary, ["a__drop", "b__hook"])
    assert status.failed and status.css == "failed"
    assert status.failed_tasks == ["check_raw_batches: failed", "push_audiences: upstream failed"]
    assert status.not_pushed == ["a__drop", "b__hook"]
    assert status.headline == ("The run failed: 2 task(s) failed or did not run; 1 quality "
                               "error(s); 2 sync(s) not pushed.")
    pushed = {"syncs": [{"sync": "a__drop", "status": "succeeded"}, {"sync": "b__hook", "status": "failed"}],
              "checks": {"errors": []}}
    assert page.run_status(spans[:1], pushed, ["a__drop", "b__hook"]).not_pushed == ["b__hook"]
    everything = {"syncs": pushed["syncs"][:1], "checks": {"errors": []}}
    assert not page.run_status(spans[:1], everything, ["a__drop"]).failed


def test_a_spec_cannot_close_the_script_element_it_is_embedded_in() -> None:
    embedded = page._script_json({"title": "</script><script>alert(1)</script>"})
    assert "</script>" not in embedded
    assert json.loads(str(embedded))["title"] == "</script><script>alert(1)</script>"


def test_the_timeline_chart_draws_one_bar_per_task_instance_that_ran() -> None:
    spans = [_span("prepare_warehouse", -1, "prepare_warehouse", "success", 0, 5),
             _span("extract_load", 0, "extract_load[crm_contacts]", "failed", 1, 2),
             TaskSpan("push_audiences", -1, "push_audiences", "upstream_failed")]
    spec = charts.task_timeline(spans)
    [values] = spec["datasets"].values()
    assert [(row["task"], row["state"], row["seconds"]) for row in values] == [
        ("prepare_warehouse", "success", 5.0), ("extract_load[crm_contacts]", "failed", 2.0)]
    assert spec["encoding"]["color"]["scale"]["domain"] == ["success", "failed"]
