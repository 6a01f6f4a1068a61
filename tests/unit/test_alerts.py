"""Alerts and data-aware scheduling with real Airflow, on a tiny DAG instead of the nightly one.

One child process (a fresh SQLite metadata database, ``dag.test()`` as trebol.airflow.local_runner
runs the nightly DAG: ``test_run``) runs ``tests/airflow_dags/alert_probe.py``, wired like the nightly DAG,
twice: its task fails (twice: one retry), then the next run succeeds and writes the marts asset.
The alerts go to a local SMTP server (aiosmtpd) and a local Slack-compatible webhook. Then the
scheduler's own run creation starts the example consumer ``dags/trebol_marts_published.py`` on
that asset event, and its task runs. The nightly DAG's wiring: tests/unit/test_dags.py.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from trebol.airflow import alerts
from trebol.airflow.local_runner import QUIET_ENV

from ..fakes.alert_channels import SlackWebhookSink, SmtpSink
from ..helpers import PROJECT_DIR

PROBE = PROJECT_DIR / "tests" / "airflow_dags" / "alert_probe.py"
CONSUMER = PROJECT_DIR / "dags" / "trebol_marts_published.py"
SECRET = "s3cret-probe-pass"  # in the probe's error: never in an alert
FAILED_DATE, GOOD_DATE = "2026-06-28T22:00:00+00:00", "2026-06-29T22:00:00+00:00"

# The child: the metadata database's migrations, two runs of the probe, then what the scheduler
# does with the asset event (its run creation, SchedulerJobRunner._create_dagruns_for_dags) and
# the consumer's task, run as dag.test() runs tasks. Prints one JSON line.
CHILD = textwrap.dedent(f"""
    import json, os, sys
    from datetime import datetime
    from sqlalchemy import select, update
    from airflow.dag_processing.dagbag import DagBag
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.asset import AssetEvent
    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.db import upgradedb
    from trebol.airflow.local_runner import test_run

    upgradedb()  # as `airflow db migrate`, on the fresh SQLite file
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    probe, consumer = bag.get_dag("alert_probe"), bag.get_dag("trebol_marts_published")
    states = []
    os.environ["ALERT_PROBE_FAIL"] = "1"
    states.append(str(test_run(probe, datetime.fromisoformat("{FAILED_DATE}")).state))
    with create_session() as session:  # as `airflow dags unpause trebol_marts_published`
        session.execute(update(DagModel).where(DagModel.dag_id == consumer.dag_id)
                        .values(is_paused=False))
    del os.environ["ALERT_PROBE_FAIL"]
    states.append(str(test_run(probe, datetime.fromisoformat("{GOOD_DATE}")).state))
    runner = SchedulerJobRunner(job=Job(), num_runs=1)
    with create_session() as session:
        events = [dict(e.extra) for e in session.scalars(select(AssetEvent))]
        with prohibit_commit(session) as guard:
            runner._create_dagruns_for_dags(guard, session)
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == consumer.dag_id)).one()
        run.dag = DBDagBag().get_dag_for_run(run, session=session)
        run.state = DagRunState.RUNNING
        session.commit()
        while run.state == DagRunState.RUNNING:
            schedulable, _ = run.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            for ti in schedulable:
                _run_task(ti=ti, task=consumer.task_dict[ti.task_id])
            session.expire_all()
        consumer_run = [str(run.run_type), str(run.state)]
    print("CHILD " + json.dumps({{"states": states, "events": events, "consumer": consumer_run}}))
""")


@pytest.fixture(scope="module")
def probe_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the child once with both channels configured; what each channel and the child saw."""
    root = tmp_path_factory.mktemp("alerts")
    dags, home, trebol_home = root / "dags", root / "airflow", root / "trebol"
    dags.mkdir()
    home.mkdir()
    for dag_file in (PROBE, CONSUMER):
        shutil.copy(dag_file, dags / dag_file.name)
    with SmtpSink() as smtp, SlackWebhookSink() as webhook:
        env = {**os.environ, **QUIET_ENV, "AIRFLOW_HOME": str(home),
               "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
               "AIRFLOW_CONN_TREBOL_ALERTS_SMTP": smtp.connection(),
               "AIRFLOW_CONN_TREBOL_ALERTS_WEBHOOK": webhook.connection(),
               "TREBOL_HOME": str(trebol_home)}
        env.pop("ALERT_PROBE_FAIL", None)
        done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        (root / "child.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"child failed; see {root / 'child.log'}"
        line = next(line for line in done.stdout.splitlines() if line.startswith("CHILD "))
        return {**json.loads(line.removeprefix("CHILD ")), "mails": list(smtp.messages),
                "posts": list(webhook.received), "log": done.stdout + done.stderr,
                "trebol_home": trebol_home}


def test_a_failed_task_sends_one_alert_per_channel_with_its_fields(probe_runs: dict) -> None:
    assert probe_runs["states"] == ["failed", "success"]
    failures = [mail for mail in probe_runs["mails"] if mail["Subject"].endswith(f"failed ({FAILED_DATE})")]
    posts = [post for post in probe_runs["posts"]
             if post["body"]["text"].splitlines()[0].endswith(f"failed ({FAILED_DATE})")]
    # two tries, one alert: the callback runs once the retries are spent
    assert len(failures) == 1 and len(posts) == 1
    mail, text = failures[0], posts[0]["body"]["text"]
    assert mail["Subject"] == f"[Trébol] alert_probe: build_marts failed ({FAILED_DATE})"
    assert mail["To"] == "oncall@example.com" and mail["From"] == "trebol@example.com"
    assert posts[0]["path"] == f"/services/{SlackWebhookSink.TOKEN}"
    body = mail.get_body().get_content()
    for message in (body, text):
        assert "DAG: alert_probe" in message
        assert "task: build_marts" in message
        assert f"logical date: {FAILED_DATE}" in message
        # the error's first line, its secret hidden, and no second line
        assert ("error: ConnectionError: could not reach postgresql://loader:***@db.example:5432/"
                "trebol: connection refused") in message
        assert SECRET not in message and "second line" not in message
        log_url = next(line for line in message.splitlines() if line.startswith("log: "))
        assert "/dags/alert_probe/runs/manual__" in log_url and "/tasks/build_marts" in log_url
        assert "try_number=2" in log_url


def test_the_next_good_run_sends_one_recovery(probe_runs: dict) -> None:
    recoveries = [mail for mail in probe_runs["mails"] if "recovered" in mail["Subject"]]
    posts = [post for post in probe_runs["posts"] if "recovered" in post["body"]["text"].splitlines()[0]]
    assert len(recoveries) == 1 and len(posts) == 1
    assert recoveries[0]["Subject"] == f"[Trébol] alert_probe: recovered ({GOOD_DATE})"
    text = posts[0]["body"]["text"]
    assert "the previous one (manual__" in text and ") failed" in text
    assert "run: http://" in text and "/dags/alert_probe/runs/manual__" in text
    # nothing else was sent: one failure and one recovery per channel
    assert len(probe_runs["mails"]) == len(probe_runs["posts"]) == 2


def test_the_asset_event_triggers_the_consumer(probe_runs: dict) -> None:
    """The good run's task wrote the marts asset's event (the failed one none); the scheduler
    made an asset-triggered run of the consumer, which marked the as-of date published."""
    assert probe_runs["events"] == [{"as_of_date": "2026-06-30"}]
    assert probe_runs["consumer"] == ["asset_triggered", "success"]
    marker = probe_runs["trebol_home"] / "reports" / "2026-06-30" / "marts_published.json"
    published = json.loads(marker.read_text())
    assert published["as_of_date"] == "2026-06-30" and published["events"] == 1
    assert published["source_run_id"].startswith("manual__")


def _alert_log_lines(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> list[str]:
    """The lines trebol.airflow.alerts logged (Airflow's logging prints them, or pytest's
    handler catches them, depending on who configured logging first)."""
    printed = [line for line in capfd.readouterr().out.splitlines() if "trebol.airflow.alerts" in line]
    caught = [f"[{record.levelname.lower()}] {record.getMessage()}" for record in caplog.records
              if record.name == "trebol.airflow.alerts"]
    return printed or caught


def test_no_channel_no_alert_one_log_line(monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    for conn_id in alerts.CHANNELS:
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    alert = alerts.Alert("failure", dag_id="trebol_nightly", logical_date="2026-06-29T22:00:00+00:00",
                         task="extract_load[crm_contacts]", error="OperationalError: timeout")
    with caplog.at_level(logging.INFO, logger="trebol.airflow.alerts"):
        assert alerts.send(alert) == []
    lines = _alert_log_lines(caplog, capfd)
    assert len(lines) == 1, lines
    assert "warning" in lines[0]
    assert ("no alert channel configured (Airflow connections trebol_alerts_smtp / "
            "trebol_alerts_webhook): the failure alert of trebol_nightly was not sent") in lines[0]


def test_an_smtp_channel_without_recipients_is_named(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_TREBOL_ALERTS_SMTP",
                       json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": 1,
                                   "extra": {"from_email": "trebol@example.com"}}))
    monkeypatch.delenv("AIRFLOW_CONN_TREBOL_ALERTS_WEBHOOK", raising=False)
    alert = alerts.Alert("recovery", dag_id="trebol_nightly", logical_date="2026-06-29")
    with caplog.at_level(logging.INFO, logger="trebol.airflow.alerts"):
        assert alerts.send(alert) == []
    lines = _alert_log_lines(caplog, capfd)
    assert len(lines) == 1, lines
    assert ("trebol_alerts_smtp: no recipients; set its extra 'to': the recovery alert is not "
            "e-mailed") in lines[0]


def test_the_late_run_alert_from_the_deadline_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the scheduler hands a deadline callback (Deadline.handle_miss): the DAG run as the
    REST API's JSON (DAGRunResponse) and the deadline. A real scheduler and triggerer take a
    minute to start: too slow for every test run."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse

    assert {"dag_id", "dag_run_id", "logical_date", "state"} <= set(DAGRunResponse.model_fields)
    context = {"dag_run": {"dag_id": "trebol_nightly", "dag_run_id": "scheduled__2026-06-29T22:00:00+00:00",
                           "logical_date": "2026-06-29T22:00:00Z", "state": "running"},
               "deadline": {"id": "d1", "deadline_time": "2026-06-30T05:00:00Z"}}
    alert = alerts.late_alert(context, "07:00 Europe/Madrid")
    assert alert.subject == "[Trébol] trebol_nightly: late (2026-06-29T22:00:00Z)"
    assert "detail: not succeeded by 07:00 Europe/Madrid (deadline 2026-06-30T05:00:00Z); " \
           "state running" in alert.text()
    assert "/dags/trebol_nightly/runs/scheduled__2026-06-29T22%3A00%3A00%2B00%3A00" in alert.text()


def test_a_mapped_task_is_named_by_its_source_and_an_error_by_its_first_line() -> None:
    def alert_of(map_index: int, rendered: str | None, error: object) -> alerts.Alert:
        ti = SimpleNamespace(task_id="extract_load", map_index=map_index, rendered_map_index=rendered,
                             dag_id="trebol_nightly", log_url="http://h/log")
        return alerts.failure_alert({"ti": ti, "exception": error, "logical_date": None})

    assert alert_of(0, "crm_contacts", ValueError("x\ny")).task == "extract_load[crm_contacts]"
    assert alert_of(3, None, ValueError("x")).task == "extract_load[3]"
    assert alert_of(-1, None, ValueError("x")).task == "extract_load"
    assert alert_of(-1, None, ValueError("bad row\nsecond")).error == "ValueError: bad row"
    assert alert_of(-1, None, TimeoutError()).error == "TimeoutError"
    assert alert_of(-1, None, None).error == "(no error message)"


def test_an_alert_escapes_what_slack_would_read_as_markup() -> None:
    alert = alerts.Alert("failure", dag_id="d", logical_date="x", task="t",
                         error="ValueError: <b> & </b>", url="http://h/l?a=1&b=2")
    assert "&lt;b&gt; &amp; &lt;/b&gt;" in alert.slack_text()
    assert "a=1&amp;b=2" in alert.slack_text()
    assert "&lt;b&gt;" in alert.html()
