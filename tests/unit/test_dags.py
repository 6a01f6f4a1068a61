"""DAG integrity: every DAG imports, has no cycles, has owner, tags, docs and each task's policy
(retries with backoff, a measured timeout), parses within its budget; the nightly DAG's alerts
and assets are wired."""

from __future__ import annotations

import ast
import copy
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from airflow.dag_processing.dagbag import DagBag

from trebol.airflow import alerts, assets, policy, tasks
from trebol.airflow.connections import ROLE_OF_TASK, TASKS_WITHOUT_WAREHOUSE, task_conn_id
from trebol.interval import Interval, nightly_interval
from trebol.interval import local_midnight as _local_midnight
from trebol.report import timeline

from ..helpers import PROJECT_DIR

DAGS_DIR = PROJECT_DIR / "dags"
# deterministic tasks: a retry would meet the same data, so their failure is final
NOT_RETRIED = {"check_raw_batches", "check_marts", "fail_run"}
# Parse-time budget of one DAG file, as the DagBag records it. Measured 2026-12-05 on the 2-core
# machine: trebol_nightly.py 0.93 s (busy machine, load 4), trebol_marts_published.py 0.01 s (its
# imports already loaded). A generous bound: a regression (work at import time) costs seconds.
PARSE_BUDGET_SECONDS = 5.0


@pytest.fixture(scope="module")
def dag_bag() -> DagBag:
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_imports(dag_bag: DagBag) -> None:
    assert dag_bag.import_errors == {}
    assert "trebol_nightly" in dag_bag.dag_ids


def test_dags_have_owner_tags_docs_and_each_task_its_policy(dag_bag: DagBag) -> None:
    assert {"trebol_nightly", "trebol_marts_published"} <= set(dag_bag.dag_ids)
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags and "trebol" in dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} is not documented"
        for task in dag.tasks:
            name = f"{dag_id}.{task.task_id}"
            assert task.owner == policy.OWNER, f"{name} has no owner"
            if task.task_id in NOT_RETRIED:
                assert task.retries == 0, f"{name} would retry a final answer"
            else:
                assert task.retries == policy.RETRIES, f"{name} has no retries"
            assert task.retry_exponential_backoff == policy.RETRY_EXPONENTIAL_BACKOFF, name
            assert task.max_retry_delay == policy.MAX_RETRY_DELAY, name
            # the timeout of its measurement, never under the floor nor under 3x the tenfold run
            assert task.task_id in policy.POLICY, f"{name}: no measured policy in policy.POLICY"
            sized = policy.POLICY[task.task_id]
            assert task.execution_timeout == sized.execution_timeout(), name
            assert task.execution_timeout >= policy.TIMEOUT_FLOOR, name
            assert task.execution_timeout.total_seconds() >= 3 * sized.tenfold_seconds, name
    assert set(policy.POLICY) == {task.task_id for dag in dag_bag.dags.values() for task in dag.tasks}


def test_the_policy_rule_sizes_the_timeouts() -> None:
    assert policy.TaskPolicy(0.1, 0.2).execution_timeout() == timedelta(minutes=5)
    assert policy.TaskPolicy(10, 101).execution_timeout() == timedelta(minutes=10)  # 303 s
    assert policy.TaskPolicy(10, 600).execution_timeout() == timedelta(minutes=30)
    assert policy.TaskPolicy(10, 601).execution_timeout() == timedelta(minutes=35)


def test_the_dags_size_their_timeouts_for_the_expected_customers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREBOL_EXPECTED_CUSTOMERS", "1000000")
    nightly = DagBag(dag_folder=str(DAGS_DIR / "trebol_nightly.py")).dags["trebol_nightly"]
    assert nightly.get_task("extract_load").execution_timeout == timedelta(minutes=95)
    assert nightly.get_task("dbt_build").execution_timeout == \
        policy.POLICY["dbt_build"].execution_timeout(1_000_000) > timedelta(hours=2)


def test_the_timeouts_grow_with_the_expected_customers() -> None:
    # linear above the 20,000 measured: 37.4 s x 3 x 50 = 5,610 s, in whole 5 minutes
    assert policy.TaskPolicy(7.1, 37.4).execution_timeout(1_000_000) == timedelta(minutes=95)
    assert policy.TaskPolicy(7.1, 37.4).execution_timeout(40_000) == timedelta(minutes=5)  # 224 s
    # never below the measurement's own timeout
    assert policy.TaskPolicy(10, 601).execution_timeout(2_000) == timedelta(minutes=35)
    assert policy.task_policy("extract_load", 1_000_000)["execution_timeout"] == timedelta(minutes=95)


def _callbacks(callbacks: object) -> list[object]:
    return callbacks if isinstance(callbacks, list) else [callbacks] if callbacks else []


def test_every_nightly_task_records_when_it_ran_for_the_run_report(dag_bag: DagBag) -> None:
    """Each task of the nightly DAG writes its span for the report's timeline when it ends,
    whatever the outcome (trebol.report.timeline)."""
    for task in dag_bag.dags["trebol_nightly"].tasks:
        assert _callbacks(task.on_success_callback) == [timeline.on_success], task.task_id


def test_every_failing_task_alerts_and_a_recovery_is_told(dag_bag: DagBag) -> None:
    """One alert per failed task (after its last try): each task's failure callback, but for
    fail_run, whose failure only marks the run failed; the recovery on the DAG's success."""
    for dag_id, dag in dag_bag.dags.items():
        for task in dag.tasks:
            callbacks = _callbacks(task.on_failure_callback)
            expected = [] if task.task_id == "fail_run" else [alerts.on_task_failure]
            if dag_id == "trebol_nightly" and task.task_id != "fail_run":
                expected.append(timeline.on_failure)  # the run report's record, no alert
            assert callbacks == expected, f"{dag_id}.{task.task_id}"
            retry = _callbacks(task.on_retry_callback)
            assert retry == ([timeline.on_retry] if dag_id == "trebol_nightly" else []), \
                f"{dag_id}.{task.task_id} would alert every try"
    nightly = dag_bag.dags["trebol_nightly"]
    assert nightly.on_success_callback == alerts.on_dag_success
    assert not nightly.on_failure_callback  # the failed task already said what broke


def test_a_late_nightly_run_alerts_at_the_deadline(dag_bag: DagBag) -> None:
    """A Deadline Alert counted from when the run was queued (the scheduled midnight): 07:00 by
    default (TREBOL_ALERT_DEADLINE); a backfilled or manual run gets the same 7 h."""
    from airflow.sdk import AsyncCallback, DeadlineReference

    (deadline,) = dag_bag.dags["trebol_nightly"].deadline
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert deadline.interval == timedelta(hours=7)
    assert isinstance(deadline.callback, AsyncCallback)
    assert deadline.callback.path == "trebol.airflow.alerts.notify_deadline_missed"
    assert deadline.callback.kwargs == {"deadline": "07:00 Europe/Madrid"}


def test_the_marts_and_audiences_are_assets_of_the_tasks_that_write_them(dag_bag: DagBag) -> None:
    nightly = dag_bag.dags["trebol_nightly"]
    outlets = {task.task_id: task.outlets for task in nightly.tasks if task.outlets}
    assert outlets == {"dbt_build": [assets.MARTS_CORE], "dbt_build_value": [assets.MARTS_VALUE],
                       "stage_audiences": [assets.AUDIENCES_STAGED],
                       "push_audiences": [assets.AUDIENCES_PUSHED],
                       "rebuild_current_marts": [assets.MARTS_CORE, assets.MARTS_VALUE]}
    consumer = dag_bag.dags["trebol_marts_published"]
    assert list(consumer.timetable.asset_condition.objects) == [assets.MARTS_VALUE]
    assert consumer.max_active_runs == 1 and consumer.catchup is False


def test_dags_have_no_cycles(dag_bag: DagBag) -> None:
    for dag in dag_bag.dags.values():
        order = [task.task_id for task in dag.topological_sort()]
        assert sorted(order) == sorted(dag.task_ids)


def test_dag_files_parse_within_the_budget(dag_bag: DagBag) -> None:
    """The DagBag's own record of each file's parse time (no timer of ours), against the budget."""
    assert {"trebol_nightly.py", "trebol_marts_published.py"} <= {
        Path(stat.file).name for stat in dag_bag.dagbag_stats}
    for stat in dag_bag.dagbag_stats:
        seconds = stat.duration.total_seconds()
        print(f"parse time {stat.file}: {seconds:.3f} s (budget {PARSE_BUDGET_SECONDS} s)")
        assert seconds < PARSE_BUDGET_SECONDS, f"{stat.file} took {stat.duration}"


def test_push_only_after_the_quality_gate(dag_bag: DagBag) -> None:
    dag = dag_bag.dags["trebol_nightly"]
    push = dag.get_task("push_audiences")
    assert push.trigger_rule == "all_success"
    # one mapped push per sync of destinations.yml, listed only once the gate has passed
    assert push.upstream_task_ids == {"list_syncs"}
    syncs = dag.get_task("list_syncs")
    assert syncs.trigger_rule == "all_success"
    # and only when the opt-outs reported by the campaign tools could be read
    assert syncs.upstream_task_ids == {"check_raw_batches", "check_marts", "fit_clv",
                                       "pull_consent_feedback"}
    # the raw suites read the quality models dbt_build makes; they run whatever its tests found
    raw_check = dag.get_task("check_raw_batches")
    assert raw_check.upstream_task_ids == {"dbt_build"} and raw_check.trigger_rule == "all_done"
    # the mart checks see the CLV rows, the marts built on them and the staged audiences
    assert dag.get_task("check_marts").upstream_task_ids == {"stage_audiences"}
    assert dag.get_task("stage_audiences").upstream_task_ids == {"dbt_build_value"}
    assert {"extract_load"} <= dag.get_task("dbt_build").upstream_task_ids


def test_the_summary_always_runs_and_a_failure_fails_the_run(dag_bag: DagBag) -> None:
    dag = dag_bag.dags["trebol_nightly"]
    summarize, fail_run = dag.get_task("summarize"), dag.get_task("fail_run")
    assert summarize.trigger_rule == "all_done"
    assert fail_run.trigger_rule == "one_failed"
    after_summary = {"find_newest_date", "rebuild_current_marts"}
    every_task = set(dag.task_ids) - {"summarize", "fail_run", "list_sources"} - after_summary
    assert summarize.upstream_task_ids == every_task
    assert fail_run.upstream_task_ids == every_task | {"summarize"} | after_summary
    assert [task.task_id for task in dag.leaves] == ["fail_run"]


def test_a_backfill_rebuilds_the_current_marts_after_its_summary(dag_bag: DagBag) -> None:
    """The newest date's marts come back after a run of an older date, whatever it met: the
    rebuild follows the summary (which reports the run's own date), and a run of the newest date
    skips it without skipping fail_run."""
    dag = dag_bag.dags["trebol_nightly"]
    newest, rebuild = dag.get_task("find_newest_date"), dag.get_task("rebuild_current_marts")
    assert newest.upstream_task_ids == {"summarize"} and newest.trigger_rule == "all_done"
    assert newest.ignore_downstream_trigger_rules is False
    assert rebuild.upstream_task_ids == {"find_newest_date"}
    assert rebuild.env["TREBOL_AS_OF_AT"] == "{{ ti.xcom_pull(task_ids='find_newest_date') }}"


def test_the_consent_feedback_is_loaded_and_its_failure_stops_only_the_push(
        dag_bag: DagBag) -> None:
    """The opt-outs are exported before the sources are listed and loaded; a campaign tool that
    cannot be read still lets the warehouse be built (list_sources waits for the pull whatever
    its outcome), and stops the push (above)."""
    dag = dag_bag.dags["trebol_nightly"]
    pull, listing = dag.get_task("pull_consent_feedback"), dag.get_task("list_sources")
    assert pull.upstream_task_ids == set() and pull.retries >= 1
    assert listing.upstream_task_ids == {"pull_consent_feedback"}
    assert listing.trigger_rule == "all_done"
    extract = dag.get_task("extract_load")
    assert extract.upstream_task_ids == {"prepare_warehouse", "list_sources"}
    assert extract.trigger_rule == "all_success"


def test_clv_dependent_models_are_built_after_the_fit(dag_bag: DagBag) -> None:
    """dbt_build builds all but what reads the CLV predictions, fit_clv reads its
    fct_transactions, dbt_build_value the rest: also when the fit failed (fallback rules), never
    when dbt_build did."""
    dag = dag_bag.dags["trebol_nightly"]
    dbt_build, fit, value = (dag.get_task(task_id) for task_id in
                             ("dbt_build", "fit_clv", "dbt_build_value"))
    assert fit.upstream_task_ids == {"dbt_build"}
    assert value.upstream_task_ids == {"dbt_build", "fit_clv"}
    assert value.trigger_rule == "all_done_min_one_success"
    assert dbt_build.exclude == value.select == "source:clv+"
    assert dbt_build.select is None and value.exclude is None


def test_schedule_is_daily_in_the_business_timezone(dag_bag: DagBag) -> None:
    """The scheduled run of D starts at D's local midnight and its logical date is D (no
    interval of the timetable's own), so ``trebol run --date D`` (logical date D's local
    midnight), the schedule and ``airflow backfill create --from-date D`` name the same run; its
    data interval is the day before, 23 hours on the night clocks go forward."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    dag = dag_bag.dags["trebol_nightly"]
    assert dag.timetable.expression == "0 0 * * *"
    assert str(dag.timetable.timezone) == "Europe/Madrid"
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    madrid = ZoneInfo("Europe/Madrid")
    timetable = coerce_to_core_timetable(dag.timetable)
    for day in (date(2026, 6, 30), date(2026, 3, 30)):
        previous = _local_midnight(day - timedelta(days=1), "Europe/Madrid")
        run = timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval(previous, previous),
            restriction=TimeRestriction(earliest=None, latest=None, catchup=True))
        assert run is not None
        assert run.logical_date == run.run_after == _local_midnight(day, "Europe/Madrid")
        interval = nightly_interval(run.logical_date, "Europe/Madrid")
        assert interval.as_of_date("Europe/Madrid") == day
        assert interval.start.astimezone(madrid) == datetime(day.year, day.month, day.day - 1,
                                                             tzinfo=madrid)
    assert interval.end.astimezone(UTC) - interval.start.astimezone(UTC) == timedelta(hours=23)


def test_no_secret_is_templated_into_the_dbt_tasks(dag_bag: DagBag) -> None:
    for task_id in ("dbt_build", "dbt_build_value", "rebuild_current_marts"):
        dbt_task = dag_bag.dags["trebol_nightly"].get_task(task_id)
        templated = {name: getattr(dbt_task, name) for name in dbt_task.template_fields}
        assert "TREBOL_AS_OF_AT" in templated["env"]
        assert not any("PASSWORD" in key or "DSN" in key for key in templated["env"])
        assert "password" not in repr(templated).lower()


class _Opened(Exception):
    """Raised where a task function opens its warehouse connection."""


def test_each_task_reaches_the_warehouse_as_its_role(dag_bag: DagBag,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task but those of TASKS_WITHOUT_WAREHOUSE reaches the warehouse, through its role's
    connection (tests/integration/test_roles.py: each connection's role, what it may do)."""
    dag = dag_bag.dags["trebol_nightly"]
    assert set(ROLE_OF_TASK) == set(dag.task_ids) - TASKS_WITHOUT_WAREHOUSE
    assert set(dag.task_ids) > TASKS_WITHOUT_WAREHOUSE
    assert {task_id: task_conn_id(task_id) for task_id in ROLE_OF_TASK} == {
        "prepare_warehouse": "trebol_warehouse",  # the admin: migrations
        "extract_load": "trebol_warehouse_loader",
        "dbt_build": "trebol_warehouse_transformer",
        "dbt_build_value": "trebol_warehouse_transformer",
        "fit_clv": "trebol_warehouse_transformer",
        "check_raw_batches": "trebol_warehouse_checker",
        "check_marts": "trebol_warehouse_checker",
        "stage_audiences": "trebol_warehouse_activation",
        "push_audiences": "trebol_warehouse_activation",
        "summarize": "trebol_warehouse_checker",
        "find_newest_date": "trebol_warehouse_transformer",
        "rebuild_current_marts": "trebol_warehouse_transformer",
    }
    for task_id in ("dbt_build", "dbt_build_value", "rebuild_current_marts"):
        assert dag.get_task(task_id).conn_id == task_conn_id(task_id)
    # each task function opens the connection of its own task
    opened: list[str] = []

    def record(task_id: str) -> None:
        opened.append(task_id)
        raise _Opened(task_id)

    monkeypatch.setattr(tasks, "task_connection", record)
    interval = Interval(datetime(2026, 6, 28, 22, tzinfo=UTC), datetime(2026, 6, 29, 22, tzinfo=UTC))
    calls: dict[str, Callable[[], object]] = {
        "prepare_warehouse": lambda: tasks.prepare_warehouse(interval),
        "extract_load": lambda: tasks.extract_load_source(tasks.source_names()[0], interval),
        "check_raw_batches": lambda: tasks.check_raw_batches(interval, "run"),
        "fit_clv": lambda: tasks.fit_clv(interval),
        "stage_audiences": lambda: tasks.stage_audiences(interval),
        "check_marts": lambda: tasks.check_marts(interval, "run"),
        "push_audiences": lambda: tasks.push_sync(tasks.sync_names()[0], interval, "run"),
        "summarize": lambda: tasks.summarize(interval, "run", {}),
        "find_newest_date": lambda: tasks.find_newest_date(interval),
    }
    for task_id, call in calls.items():
        with pytest.raises(_Opened):
            call()
        assert opened[-1] == task_id
    assert set(calls) == set(ROLE_OF_TASK) - {"dbt_build", "dbt_build_value", "rebuild_current_marts"}
    # the consent pull opens no warehouse connection (the demo has no Mailchimp destination)
    assert tasks.pull_consent_feedback(interval) == {}
    assert opened == list(calls)


def test_airflow_loads_no_module_of_the_package_as_a_plugin() -> None:
    """Airflow's plugin manager imports every .py under the plugins folder as a top-level module
    named after its file; plugins/.airflowignore keeps the ``trebol`` package out of it (else
    ``load``, ``settings``, ``tasks`` … would be imported twice, once under a clashing name)."""
    probe = (
        "import sys\n"
        "from airflow._shared.plugins_manager.plugins_manager import "
        "_load_plugins_from_plugin_directory as load\n"
        "before = set(sys.modules)\n"
        f"plugins, errors = load({str(PROJECT_DIR / 'plugins')!r})\n"
        "print(len(plugins), len(errors), sorted(set(sys.modules) - before))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}, timeout=120)
    plugins, errors, *_ = done.stdout.split(maxsplit=2)
    imported = done.stdout.split(maxsplit=2)[2]
    assert (plugins, errors) == ("0", "0")
    for name in ("'load'", "'settings'", "'tasks'", "'checks'", "'cli'"):
        assert name not in imported, imported


def test_the_erasure_dag_takes_validated_params_and_runs_the_steps_in_order(
        dag_bag: DagBag) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    from trebol.erasure.identifiers import REQUEST_KINDS
    from trebol.erasure.requests import STEP_NAMES

    dag = dag_bag.dags["trebol_erasure"]
    assert dag.timetable.can_be_scheduled is False and dag.max_active_runs == 1
    # the same steps, in the same order, as `trebol erase` (requests.run_request)
    assert [task.task_id for task in dag.topological_sort()] == list(STEP_NAMES)
    assert dag.get_task("close_request").trigger_rule == "all_done"
    assert dag.params.get_param("identifier_type").schema["enum"] == list(REQUEST_KINDS)
    good = {"identifier_type": "email", "identifier": "ann@example.com", "requested_by": "DPO"}

    def validated(conf: dict[str, str]) -> dict[str, object]:
        params = copy.deepcopy(dag.params)
        params.update(conf)
        return params.validate()

    assert validated(good) == good
    for bad in ({**good, "identifier_type": "name"}, {**good, "identifier": ""},
                {"identifier_type": "email", "requested_by": "DPO"}):
        with pytest.raises(ParamValidationError):
            validated(bad)


def test_each_erasure_task_connects_as_the_eraser(monkeypatch: pytest.MonkeyPatch) -> None:
    from trebol.airflow import erasure_tasks
    from trebol.erasure.requests import STEP_NAMES

    opened: list[str] = []

    def record(conn_id: str) -> None:
        opened.append(conn_id)
        raise _Opened(conn_id)

    monkeypatch.setattr(erasure_tasks, "warehouse_connection", record)
    monkeypatch.setenv("TREBOL_ERASURE_SALT", "a-salt-of-sixteen-characters")
    params = {"identifier_type": "email", "identifier": "ann@example.com", "requested_by": "DPO"}
    for step in STEP_NAMES:
        with pytest.raises(_Opened):
            getattr(erasure_tasks, step)(params, "manual__2026-07-01")
    assert opened == ["trebol_warehouse_eraser"] * len(STEP_NAMES)


def test_a_task_process_imports_no_heavy_library_it_does_not_use() -> None:
    """Each task of the scheduler's runs is a process importing ``trebol.airflow.tasks``: it
    leaves pandas and scipy (the CLV fit, ≈2 s an import), Altair (the run report, ≈1 s) and
    Great Expectations (the checks) to the tasks that need them."""
    probe = "import sys, trebol.airflow.tasks; print(sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}, timeout=120)
    imported = set(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
    assert imported.isdisjoint({"pandas", "scipy", "altair", "great_expectations"})
