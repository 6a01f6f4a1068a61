"""DAG integrity: every DAG imports, has no cycles, has owner, retries and tags, parses fast."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from airflow.dag_processing.dagbag import DagBag

from trebol.airflow import tasks
from trebol.airflow.connections import ROLE_OF_TASK, TASKS_WITHOUT_WAREHOUSE, task_conn_id
from trebol.interval import Interval

from ..helpers import PROJECT_DIR

DAGS_DIR = PROJECT_DIR / "dags"
# deterministic tasks: a retry would meet the same data, so their failure is final
NOT_RETRIED = {"check_raw_batches", "check_marts", "fail_run"}


@pytest.fixture(scope="module")
def dag_bag() -> DagBag:
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_imports(dag_bag: DagBag) -> None:
    assert dag_bag.import_errors == {}
    assert "trebol_nightly" in dag_bag.dag_ids


def test_dags_have_owner_retries_tags_and_docs(dag_bag: DagBag) -> None:
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} is not documented"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no owner"
            if task.task_id in NOT_RETRIED:
                assert task.retries == 0, f"{dag_id}.{task.task_id} would retry a final answer"
            else:
                assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_dags_have_no_cycles(dag_bag: DagBag) -> None:
    for dag in dag_bag.dags.values():
        order = [task.task_id for task in dag.topological_sort()]
        assert sorted(order) == sorted(dag.task_ids)


def test_dag_files_parse_under_two_seconds(dag_bag: DagBag) -> None:
    assert dag_bag.dagbag_stats, "no DAG file was parsed"
    for stat in dag_bag.dagbag_stats:
        assert stat.duration.total_seconds() < 2.0, f"{stat.file} took {stat.duration}"


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
    every_task = set(dag.task_ids) - {"summarize", "fail_run", "list_sources"}
    assert summarize.upstream_task_ids == every_task
    assert fail_run.upstream_task_ids == every_task | {"summarize"}
    assert [task.task_id for task in dag.leaves] == ["fail_run"]


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
    dag = dag_bag.dags["trebol_nightly"]
    assert dag.timetable.expression == "0 0 * * *"
    assert str(dag.timetable.timezone) == "Europe/Madrid"
    assert dag.timetable.interval.days == 1
    assert dag.max_active_runs == 1
    assert dag.catchup is False


def test_no_secret_is_templated_into_the_dbt_tasks(dag_bag: DagBag) -> None:
    for task_id in ("dbt_build", "dbt_build_value"):
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
    }
    for task_id in ("dbt_build", "dbt_build_value"):
        assert dag.get_task(task_id).conn_id == task_conn_id(task_id)
    # each task function opens the connection of its own task
    opened: list[str] = []

    def record(task_id: str) -> None:
        opened.append(task_id)
        raise _Opened(task_id)

    monkeypatch.setattr(tasks, "task_connection", record)
    interval = Interval(datetime(2026, 6, 29, 22, tzinfo=UTC), datetime(2026, 6, 30, 22, tzinfo=UTC))
    calls: dict[str, Callable[[], object]] = {
        "prepare_warehouse": tasks.prepare_warehouse,
        "extract_load": lambda: tasks.extract_load_source(tasks.source_names()[0], interval),
        "check_raw_batches": lambda: tasks.check_raw_batches(interval, "run"),
        "fit_clv": lambda: tasks.fit_clv(interval),
        "stage_audiences": lambda: tasks.stage_audiences(interval),
        "check_marts": lambda: tasks.check_marts(interval, "run"),
        "push_audiences": lambda: tasks.push_sync(tasks.sync_names()[0], interval, "run"),
        "summarize": lambda: tasks.summarize(interval, "run"),
    }
    for task_id, call in calls.items():
        with pytest.raises(_Opened):
            call()
        assert opened[-1] == task_id
    assert set(calls) == set(ROLE_OF_TASK) - {"dbt_build", "dbt_build_value"}
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
