"""Alerts of the Trébol DAGs, sent through the providers' notifiers to the channels configured as
Airflow connections.

- a task's failure (``on_task_failure``, each task's ``on_failure_callback``): one message naming
  the DAG, the task, the logical date, the error's first line and the task's log URL;
- the recovery (``on_dag_success``, the DAG's ``on_success_callback``): one message when a run
  succeeds and the run before it (by logical date, in Airflow's metadata) failed;
- a late run (``notify_deadline_missed``, the callback of the DAG's ``DeadlineAlert``, run by the
  triggerer): one message when the run has not succeeded by the deadline.

Channels: ``trebol_alerts_smtp`` (an SMTP connection: host, port, login, password; extra
``from_email`` and ``to``, comma-separated recipients: ``SmtpNotifier``) and
``trebol_alerts_webhook`` (a Slack incoming webhook connection, or any Slack-compatible endpoint:
``SlackWebhookNotifier``). Each configured one gets the message; with none, one log line says that
no alert was sent (not an error). A channel that fails is logged and does not fail the task.
Every message is redacted (``trebol.redaction``): no secret of an error or an address leaves.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from trebol.redaction import redact

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Connection

SMTP_CONN_ID = "trebol_alerts_smtp"
WEBHOOK_CONN_ID = "trebol_alerts_webhook"
CHANNELS = (SMTP_CONN_ID, WEBHOOK_CONN_ID)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One message: what happened (``kind``: failure, recovery or late), to which DAG run."""

    kind: str
    dag_id: str
    logical_date: str
    task: str | None = None
    error: str | None = None
    url: str | None = None
    detail: str | None = None

    @property
    def subject(self) -> str:
        what = {"failure": f"{self.task} failed", "recovery": "recovered",
                "late": "late"}[self.kind]
        return redact(f"[Trébol] {self.dag_id}: {what} ({self.logical_date})")

    def lines(self) -> list[str]:
        """The message's fields, one a line, redacted."""
        fields = [("DAG", self.dag_id), ("task", self.task), ("logical date", self.logical_date),
                  ("error", self.error), ("detail", self.detail),
                  ("log" if self.kind == "failure" else "run", self.url)]
        return [redact(f"{name}: {value}") for name, value in fields if value]

    def text(self) -> str:
        return "\n".join([self.subject, *self.lines()])

    def html(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"

    def slack_text(self) -> str:
        """The text as Slack reads it: &, < and > escaped (Slack's formatting rules)."""
        return self.text().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def first_line(error: object) -> str:
    """An exception (or a message) as one line: its type and the first line of its message."""
    if isinstance(error, BaseException):
        message = str(error).strip()
        name = type(error).__name__
        return f"{name}: {message.splitlines()[0]}" if message else name
    text = str(error or "").strip()
    return text.splitlines()[0] if text else "(no error message)"


def _iso(moment: object) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else str(moment or "(none)")


def failure_alert(context: Any) -> Alert:
    """The alert of a failed task from the task's Airflow context."""
    ti = context["ti"]
    task = ti.task_id
    if ti.map_index is not None and ti.map_index >= 0:  # a mapped task: by its source or sync
        task = f"{task}[{getattr(ti, 'rendered_map_index', None) or ti.map_index}]"
    return Alert("failure", dag_id=ti.dag_id, logical_date=_iso(context.get("logical_date")),
                 task=task, error=first_line(context.get("exception")), url=ti.log_url)


def dag_run_url(dag_id: str, run_id: str) -> str:
    """The Airflow UI's page of a DAG run (``[api] base_url``, as the task log URLs)."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def _connection(conn_id: str) -> Connection | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


async def _aconnection(conn_id: str) -> Connection | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _recipients(connection: Connection) -> list[str]:
    raw = connection.extra_dejson.get("to", "")
    parts = raw if isinstance(raw, list) else str(raw).split(",")
    return [part.strip() for part in parts if str(part).strip()]


def notifiers(alert: Alert, connections: dict[str, Connection | None]) -> list[tuple[str, BaseNotifier]]:
    """The providers' notifiers of the configured channels (``connections``: by id, None when
    absent), each with the alert's message."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    chosen: list[tuple[str, BaseNotifier]] = []
    smtp = connections.get(SMTP_CONN_ID)
    if smtp is not None:
        recipients, sender = _recipients(smtp), smtp.extra_dejson.get("from_email")
        if recipients and sender:
            chosen.append((SMTP_CONN_ID, SmtpNotifier(
                to=recipients, from_email=sender, subject=alert.subject, html_content=alert.html(),
                smtp_conn_id=SMTP_CONN_ID)))
        else:
            missing = "to" if not recipients else "from_email"
            log.error("%s: no %s; set its extra %r: the %s alert is not e-mailed",
                      SMTP_CONN_ID, "recipients" if missing == "to" else "sender", missing, alert.kind)
    if connections.get(WEBHOOK_CONN_ID) is not None:
        chosen.append((WEBHOOK_CONN_ID, SlackWebhookNotifier(
            slack_webhook_conn_id=WEBHOOK_CONN_ID, text=alert.slack_text())))
    if all(connection is None for connection in connections.values()):
        log.warning("no alert channel configured (Airflow connections %s): the %s alert of %s "
                    "was not sent", " / ".join(CHANNELS), alert.kind, alert.dag_id)
    return chosen


def _failed(channel: str, alert: Alert, error: Exception) -> None:
    log.error("%s: the %s alert of %s was not sent: %s", channel, alert.kind, alert.dag_id,
              redact(first_line(error)))


def send(alert: Alert) -> list[str]:
    """Send ``alert`` to every configured channel; the channels it reached."""
    sent = []
    for channel, notifier in notifiers(alert, {conn_id: _connection(conn_id) for conn_id in CHANNELS}):
        try:
            # notify(), not the notifier's __call__: the message is final text, never a template
            notifier.notify({})
            sent.append(channel)
        except Exception as error:
            _failed(channel, alert, error)
    if sent:
        log.info("%s alert of %s sent to %s", alert.kind, alert.dag_id, ", ".join(sent))
    return sent


async def asend(alert: Alert) -> list[str]:
    """:func:`send` for the triggerer (async): the notifiers' ``async_notify``."""
    connections = {conn_id: await _aconnection(conn_id) for conn_id in CHANNELS}
    sent = []
    for channel, notifier in notifiers(alert, connections):
        try:
            await notifier.async_notify({})
            sent.append(channel)
        except Exception as error:
            _failed(channel, alert, error)
    return sent


def on_task_failure(context: Any) -> None:
    """A task's ``on_failure_callback``: after its last try, one alert of its failure."""
    send(failure_alert(context))


def previous_run(context: Any) -> tuple[str, str] | None:
    """The run before this one by logical date, as (run id, state), from Airflow's metadata:
    through the task SDK (the DAG processor runs the callbacks of the scheduler's runs); under
    ``dag.test()``, which runs them in its own process, beside the metadata database."""
    from airflow.sdk.execution_time import task_runner

    dag_run = context["dag_run"]
    if dag_run.logical_date is None:
        return None
    if not hasattr(task_runner, "SUPERVISOR_COMMS"):  # dag.test(): no supervisor to ask
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.execute(
                select(DagRun.run_id, DagRun.state)
                .where(DagRun.dag_id == dag_run.dag_id, DagRun.logical_date < dag_run.logical_date)
                .order_by(DagRun.logical_date.desc()).limit(1)).first()
        return (row[0], str(row[1])) if row else None
    previous = context["ti"].get_previous_dagrun()
    return (previous.run_id, str(previous.state)) if previous else None


def recovery_alert(context: Any) -> Alert | None:
    """The recovery alert of a successful run whose previous run failed, else None."""
    previous = previous_run(context)
    if previous is None or not previous[1].lower().endswith("failed"):
        return None
    dag_run = context["dag_run"]
    return Alert("recovery", dag_id=dag_run.dag_id, logical_date=_iso(dag_run.logical_date),
                 detail=f"this run succeeded; the previous one ({previous[0]}) failed",
                 url=dag_run_url(dag_run.dag_id, dag_run.run_id))


def on_dag_success(context: Any) -> None:
    """The DAG's ``on_success_callback``: the recovery alert, when the previous run failed."""
    alert = recovery_alert(context)
    if alert is not None:
        send(alert)


def late_alert(context: dict[str, Any], deadline: str) -> Alert:
    """The alert of a run past its deadline, from the context the scheduler gives a deadline
    callback: the DAG run as the REST API shows it (``dag_run_id``, ``state`` …), the deadline."""
    dag_run = context["dag_run"]
    missed = context.get("deadline", {}).get("deadline_time")
    return Alert("late", dag_id=dag_run["dag_id"], logical_date=_iso(dag_run.get("logical_date")),
                 detail=(f"not succeeded by {deadline} (deadline {_iso(missed)}); "
                         f"state {dag_run.get('state')}"),
                 url=dag_run_url(dag_run["dag_id"], dag_run["dag_run_id"]))


async def notify_deadline_missed(context: dict[str, Any], deadline: str) -> None:
    """The ``AsyncCallback`` of the DAG's ``DeadlineAlert`` (the triggerer runs it): the late
    alert. ``deadline`` says the deadline in words (e.g. ``07:00 Europe/Madrid``)."""
    await asend(late_alert(context, deadline))
