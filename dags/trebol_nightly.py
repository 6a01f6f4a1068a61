"""
### Trébol nightly

The nightly batch for one data interval (the day before the logical date, in the business
timezone `TREBOL_TIMEZONE`); every step computes "as of" the interval end, so re-running or
backfilling a date reproduces that date. Scheduled at each local midnight: the run of logical
date D starts at D's midnight and loads the day before (the timetable has no interval of its
own; `trebol.interval.nightly_interval`), so D is the same date for `trebol run --date D`, the
schedule and `airflow backfill create --from-date D`. One run at a time (`max_active_runs=1`);
`TREBOL_SCHEDULE_END` (unset: none) is the last date scheduled or backfilled.

1. **prepare_warehouse** (as the admin): fails the run at once, naming the range the exports
   hold, when no daily export holds the run's day (a date typed wrong, or before the first
   export); then the warehouse's migrations (layer schemas, the task roles and their privileges,
   Trébol's own tables) and the sources' raw tables (idempotent).
2. **pull_consent_feedback** (no warehouse; beside prepare_warehouse): for each Mailchimp
   destination of `$TREBOL_CONFIG_DIR/destinations.yml`, through its Airflow connection, every
   unsubscribed and cleaned contact of its list into
   `mailchimp/opt_outs/<destination>/<interval day>.jsonl` under `TREBOL_SOURCES_DIR`: the source
   `mailchimp_opt_outs`, loaded by extract_load like the others, takes consent away in
   `dim_customers`. Nothing without a Mailchimp destination. If it fails, the warehouse is still
   built (list_sources waits for it whatever its outcome) but nothing is pushed: who opted out
   could not be read.
3. **extract_load** (loader): one mapped task per source in `$TREBOL_CONFIG_DIR/sources.yml`:
   files of the interval (plus the late-arrival lookback) are COPY-loaded into `raw`, bad rows
   quarantined, the rows of erased people skipped (the suppression list the DAG `trebol_erasure`
   fills), every file audited in `raw._load_audit` (rows read = loaded + quarantined +
   suppressed).
4. **dbt_build** (transformer): `dbt build` of `dbt_project/` through Cosmos (models, seeds and
   data tests in one task; the dbt unit tests check the SQL on fixed inputs and run in CI, not
   nightly) but for what reads the CLV predictions: staging (normalised identifiers), identity
   resolution (stable customer keys), `dim_customers`, `fct_transactions`, RFMT, and the `quality`
   models the raw suites read.
5. **check_raw_batches** (checker; once dbt_build is done, whether or not it passed): Great
   Expectations suites on the rows the run's batches loaded (distributions: the share of unusual
   amounts, of tickets with a loyalty card, of orders with an email) and on each source's batches
   (share quarantined, the day's volume against the previous days). Types, keys, required values,
   categories and date bounds are the loader's: rows breaking them are already quarantined. The
   `quality` models these suites read hold the batches of the run dbt_build built them for,
   named in their comment; one built for another run (dbt_build failed before it) is an error.
6. **fit_clv** (transformer): BG/NBD and Gamma-Gamma fitted on each customer's repeat purchases as
   of the run's date: `marts.customer_clv` (p_alive, expected purchases, predicted CLV as
   discounted margin, churn risk) and `marts.clv_model_runs`; a failed guard rail fails the task
   and leaves the previous predictions in place.
7. **dbt_build_value** (transformer): `dbt build` of the models that read `customer_clv` and their
   descendants (`source:clv+`: customer value tiers, segments and their history, the service
   recovery queue, the `quality` models comparing segments and values with the previous run). It
   runs once dbt_build succeeded, whether or not the fit did: without predictions for the date the
   models fall back to their documented rules (`value_tier_basis`, `churn_risk_basis`), so the
   marts stay those of the run's date.
8. **stage_audiences** (activation): the members of each audience a sync of
   `$TREBOL_CONFIG_DIR/destinations.yml` sends (dbt models `audiences.aud_<name>`) for the date:
   consenting customers with an email, their fields, and the audience's stable control group
   (holdouts, never sent) into `activation.audience_members`; an audience that is missing, stale
   or holds a customer twice is refused (its syncs stop, the others go on).
9. **check_marts** (checker): Great Expectations suites on what dbt's contracts and tests cannot
   judge: the share of customers with an email or phone, plausible CLV predictions, segment sizes
   and value quantiles (12-month net value, predicted CLV) against the previous run, the spread of
   p_alive, and consent in every staged audience.
10. **push_audiences** (activation): only when both check tasks, the fit and the consent pull
    passed (an expectation of severity error fails its task, and the push does not run): one
    mapped task per sync (`list_syncs`), so a failing destination leaves the others done. Each
    diffs its staged audience against what it last delivered (`activation.sync_state`) and sends
    only adds, changes and removals, in batches, to its destination (file, webhook, Mailchimp,
    Meta custom audience); every record's outcome in `activation.sync_records`, the run in
    `activation.sync_runs`; failed records are retried by the next run, a killed run resumes.
11. **summarize** (checker; always, whatever failed): rows per layer, customers per segment, the
    checks of this run (`marts.data_quality_results`) with each failure, whether this run pushed
    (or why not) and its pushes, never an earlier run's: `summary.json` in the run's report
    folder, beside the run's Data Docs (`data_docs/`), and the run report `index.html`
    (`trebol.report`: what failed and what was not pushed first, then the tasks' timeline,
    sources, checks, segments, RFM, CLV, migration and syncs, readable offline). Every task
    records when it ran for that timeline from its success, failure and retry callbacks
    (`trebol.report.timeline`, files in the report folder): a task cannot read the others'
    times from Airflow.
12. **find_newest_date** and **rebuild_current_marts** (transformer; after the summary,
    whatever failed): a run of a date older than the newest one the history holds (a backfill)
    has written that date's history (segment_history, customer_clv, the checks' results) and
    built the current marts as of its date; `dbt build` then rebuilds them as of the newest
    date, so what BI reads never goes back in time. For the newest date, both are skipped.
    **fail_run** runs only if a task failed, so that the DAG run is marked failed.

Every task calls one typed function of `trebol.airflow.tasks` with the run's data interval
(and, where results are recorded, the run's key: its run id, and the attempt once the run was
cleared: `trebol.airflow.run_context.run_key`); no business logic lives in this file. The
retries are for what time may cure (a connection, a lock): a wrong setting or configuration
file, or a value PostgreSQL refuses, fails a task at once (`AirflowFailException`), without retry.

**Task policy** (`trebol.airflow.policy`): two retries, after `TREBOL_RETRY_DELAY_SECONDS` then
about twice that (exponential backoff, at most 30 min apart); the checks and fail_run none. Each
task's `execution_timeout` is three times its duration measured on ten times the demo's data,
in whole 5 minutes, at least 5, grown in proportion to `TREBOL_EXPECTED_CUSTOMERS` above the
20,000 measured (README, "Task policy").

**Alerts** (`trebol.airflow.alerts`, to the channels of the Airflow connections
`trebol_alerts_smtp` and `trebol_alerts_webhook`; none configured: one log line, no alert): a
task that fails after its last try sends one message (DAG, task, logical date, the error's first
line, the log URL; fail_run sends none, the failed task has); a run that succeeds after a failed
one sends a recovery; a run not succeeded by `TREBOL_ALERT_DEADLINE` (local time, 07:00: a
Deadline Alert 7 h after the run was queued at midnight) sends a late-run alert from the
triggerer.

**Assets** (`trebol.airflow.assets`): dbt_build writes `trebol_marts_core`, dbt_build_value
`trebol_marts_value`, stage_audiences `trebol_audiences_staged`, each push_audiences
`trebol_audiences_pushed`; each event's extra holds the run's `as_of_date` (and the audiences'
sizes, the sync). A DAG scheduled on them runs when they are written, e.g.
`trebol_marts_published`.

Warehouse: each task connects as the role in brackets, through its own Airflow connection
(`trebol_warehouse_loader`, `_transformer`, `_activation`, `_checker`; the admin's
`trebol_warehouse` for prepare_warehouse alone), which may do what the task does and no more
(README, "Least privilege"; `trebol.airflow.connections.ROLE_OF_TASK`); pull_consent_feedback,
list_sources, list_syncs and fail_run never reach it (`TASKS_WITHOUT_WAREHOUSE`). Owner: data
engineering.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import (
    AsyncCallback,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    dag,
    get_current_context,
    task,
)

from trebol.airflow import alerts
from trebol.airflow.assets import OUTLETS, record_events
from trebol.airflow.dbt_build import CLV_DEPENDENT_NODES, dbt_build_operator
from trebol.airflow.policy import DEFAULT_ARGS, task_policy
from trebol.interval import Interval, local_midnight
from trebol.report import timeline
from trebol.settings import load_settings

SETTINGS = load_settings()
CUSTOMERS = SETTINGS.expected_customers  # the task timeouts grow with them (task_policy)
DEADLINE = SETTINGS.alert_deadline


def _run_key() -> str:
    """The key of the running attempt of the DAG run (trebol.airflow.run_context.run_key)."""
    from trebol.airflow.run_context import run_key

    return run_key(get_current_context())


def _interval() -> Interval:
    """The running task's data interval: the day before its logical date (trebol.interval)."""
    from trebol.airflow.run_context import run_interval

    return run_interval(get_current_context(), SETTINGS.timezone)


@dag(
    dag_id="trebol_nightly",
    # runs at local midnight of D; its logical date is D (no interval: trebol.interval computes
    # the day before), the same D as `trebol run --date D` and `airflow backfill create`
    schedule=CronTriggerTimetable("0 0 * * *", timezone=SETTINGS.timezone),
    # any date the exports hold may run (prepare_warehouse checks the range): no earlier bound;
    # TREBOL_SCHEDULE_END (unset: none) stops the schedule after that date
    start_date=datetime(2000, 1, 1),
    end_date=local_midnight(SETTINGS.schedule_end, SETTINGS.timezone) if SETTINGS.schedule_end else None,
    catchup=False,
    max_active_runs=1,
    # each task records when it ran for the run report (trebol.report.timeline)
    default_args={**DEFAULT_ARGS, "retry_delay": timedelta(seconds=SETTINGS.retry_delay_seconds),
                  "on_failure_callback": [alerts.on_task_failure, timeline.on_failure],
                  "on_success_callback": timeline.on_success, "on_retry_callback": timeline.on_retry},
    on_success_callback=alerts.on_dag_success,
    # queued at the scheduled midnight: the deadline falls at DEADLINE local time
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=DEADLINE.hour, minutes=DEADLINE.minute),
        callback=AsyncCallback(alerts.notify_deadline_missed, kwargs={
            "deadline": f"{DEADLINE:%H:%M} {SETTINGS.timezone}"})),
    tags=["trebol", "nightly"],
    doc_md=__doc__,
)
def trebol_nightly() -> None:
    @task(**task_policy("prepare_warehouse", CUSTOMERS))
    def prepare_warehouse() -> list[int]:
        from trebol.airflow import tasks

        return tasks.prepare_warehouse(_interval())

    # the Mailchimp opt-outs, written for extract_load to load like any dated export
    @task(**task_policy("pull_consent_feedback", CUSTOMERS))
    def pull_consent_feedback() -> dict[str, int]:
        from trebol.airflow import tasks

        return tasks.pull_consent_feedback(_interval())

    # after the consent pull, whatever its outcome: a campaign tool down does not stop the build
    # (its failure stops the push, below)
    @task(trigger_rule="all_done", **task_policy("list_sources", CUSTOMERS))
    def list_sources() -> list[str]:
        from trebol.airflow import tasks

        return tasks.source_names()

    @task(map_index_template="{{ source_name }}", **task_policy("extract_load", CUSTOMERS))
    def extract_load(source_name: str) -> dict[str, int]:
        from trebol.airflow import tasks

        return tasks.extract_load_source(source_name, _interval())

    dbt_build = dbt_build_operator("dbt_build", SETTINGS, exclude=CLV_DEPENDENT_NODES,
                                   outlets=OUTLETS["dbt_build"], **task_policy("dbt_build", CUSTOMERS))
    dbt_build_value = dbt_build_operator("dbt_build_value", SETTINGS, select=CLV_DEPENDENT_NODES,
                                         trigger_rule="all_done_min_one_success",
                                         outlets=OUTLETS["dbt_build_value"],
                                         **task_policy("dbt_build_value", CUSTOMERS))

    # the checks are deterministic: a retry would find the same data, so a failure is final;
    # the raw checks read the quality models dbt_build makes, and run whatever its tests found
    @task(trigger_rule="all_done", **task_policy("check_raw_batches", CUSTOMERS))
    def check_raw_batches() -> dict[str, int]:
        from trebol.airflow import tasks

        return tasks.check_raw_batches(_interval(), _run_key())

    @task(outlets=OUTLETS["stage_audiences"], **task_policy("stage_audiences", CUSTOMERS))
    def stage_audiences() -> dict[str, int]:
        from trebol.airflow import tasks

        staged = tasks.stage_audiences(_interval())
        record_events(get_current_context(), SETTINGS.timezone, audiences=staged)
        return staged

    @task(**task_policy("check_marts", CUSTOMERS))
    def check_marts() -> dict[str, int]:
        from trebol.airflow import tasks

        return tasks.check_marts(_interval(), _run_key())

    @task(**task_policy("fit_clv", CUSTOMERS))
    def fit_clv() -> dict[str, object]:
        from trebol.airflow import tasks

        return tasks.fit_clv(_interval())

    @task(**task_policy("list_syncs", CUSTOMERS))
    def list_syncs() -> list[str]:
        from trebol.airflow import tasks

        return tasks.sync_names()

    @task(map_index_template="{{ sync_name }}", outlets=OUTLETS["push_audiences"],
          **task_policy("push_audiences", CUSTOMERS))
    def push_audiences(sync_name: str) -> dict[str, object]:
        from trebol.airflow import tasks

        report = tasks.push_sync(sync_name, _interval(), _run_key())
        record_events(get_current_context(), SETTINGS.timezone, sync=sync_name)
        return report

    @task(trigger_rule="all_done", **task_policy("summarize", CUSTOMERS))
    def summarize() -> dict[str, object]:
        from trebol.airflow import tasks
        from trebol.airflow.run_context import task_states
        from trebol.report.timeline import span_of

        context = get_current_context()
        return tasks.summarize(_interval(), _run_key(), task_states(context),
                               running=span_of(context, "running"))

    # after the summary, whatever failed: a run older than the newest date done (a backfill)
    # rebuilds the current marts as of the newest date; for the newest date it skips the rebuild
    @task.short_circuit(trigger_rule="all_done", ignore_downstream_trigger_rules=False,
                        **task_policy("find_newest_date", CUSTOMERS))
    def find_newest_date() -> str | None:
        from trebol.airflow import tasks

        return tasks.find_newest_date(_interval())

    rebuild_current_marts = dbt_build_operator(
        "rebuild_current_marts", SETTINGS,
        as_of_at="{{ ti.xcom_pull(task_ids='find_newest_date') }}",
        outlets=OUTLETS["rebuild_current_marts"], **task_policy("rebuild_current_marts", CUSTOMERS))

    # no alert of its own: the task that failed sent one
    @task(trigger_rule="one_failed", on_failure_callback=None, **task_policy("fail_run", CUSTOMERS))
    def fail_run() -> None:
        """Runs only when a task failed: fails the DAG run, which the summary alone would not."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed (see summary.json for the checks)")

    pulled = pull_consent_feedback()
    sources = list_sources()
    loaded = extract_load.expand(source_name=sources)
    raw_checked = check_raw_batches()
    marts_checked = check_marts()
    syncs = list_syncs()
    push = push_audiences.expand(sync_name=syncs)
    prepared = prepare_warehouse()
    fitted = fit_clv()
    staged = stage_audiences()
    summarized = summarize()
    pulled >> sources
    prepared >> loaded >> dbt_build >> [raw_checked, fitted]
    fitted >> dbt_build_value
    dbt_build >> dbt_build_value  # its trigger rule: dbt_build succeeded, fit_clv done
    dbt_build_value >> staged >> marts_checked
    [pulled, raw_checked, marts_checked, fitted] >> syncs >> push
    every_task = [prepared, pulled, loaded, raw_checked, dbt_build, fitted, dbt_build_value, staged,
                  marts_checked, syncs, push]
    every_task >> summarized
    newest = find_newest_date()
    summarized >> newest >> rebuild_current_marts
    [*every_task, summarized, newest, rebuild_current_marts] >> fail_run()


trebol_nightly()
