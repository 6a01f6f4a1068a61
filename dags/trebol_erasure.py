"""
### Trébol erasure request (GDPR: the right to be forgotten)

Triggered by hand (no schedule), once per request, with three params (validated by Airflow
before the run starts; the trigger form asks for them):

- `identifier_type`: `email`, `phone`, `loyalty_card` or `customer_key`;
- `identifier`: the value (normalised as staging does: an email trimmed and lower-cased, a phone
  read into E.164);
- `requested_by`: who asked for it (an operator, a ticket number): recorded in the audit.

Steps, one task each, every one connecting as the role `trebol_eraser` (Airflow connection
`trebol_warehouse_eraser`; member of the four task roles, so it may delete in every layer, and
nothing else: no migration, role or grant), each calling one function of
`trebol.erasure.requests` through `trebol.airflow.erasure_tasks`:

1. **open_request**: the request recorded in `audit.erasure_requests` (request id made from
   the run id, who asked, when, the identifier's type, never its value) and checked: the salt
   `TREBOL_ERASURE_SALT` is set, the identifier is one staging would read and no placeholder.
   Else the request is `refused` with one line, and nothing else runs.
2. **suppress**: the person resolved from the identity marts (their customer keys, with the
   keys retired into them, their loyalty cards, shop accounts and CRM contacts, every email and
   phone those hold); an email or phone other customers also hold (a household's) refuses the
   request: name the customer key or the card instead. The salted hash of each identifier goes
   to the suppression list `raw._suppression_list`: from now on the loader skips their rows
   (counted as `rows_suppressed` in `raw._load_audit`).
3. **remove_from_destinations**: every sync of `$TREBOL_CONFIG_DIR/destinations.yml` removes the
   person's keys it ever sent, with reason `erased`: Mailchimp deletes the contact for good
   (`delete-permanent`), the webhook gets a delete event (no field of theirs), Meta removes their
   hashed rows, the file destination writes a delivery whose snapshot lacks them. A destination
   that refuses fails the task (no retry); one that is down is retried.
4. **purge_warehouse** (one transaction, loads held off meanwhile): the person's rows deleted
   from `raw` (by the columns sources.yml declares with `identifies`), their quarantined lines,
   and every table dbt built (staging to marts, segment history, key register, audiences) or
   Trébol keeps (activation, CLV); the audit texts quoting them redacted.
5. **close_request** (always): the request `completed` when 2-4 are done, else `failed` naming
   what is missing (the run fails too). Running a request again is harmless.

What stays outside: the source systems (the POS database, the export files) belong to their
owners, who must erase there too; until they do, the suppression list keeps the person out.
The run's params (the identifier) stay in Airflow's metadata database with the run: delete the
run once it completed (`airflow dags delete`, or `trebol erase`, which runs the same steps
without Airflow). Owner: data protection.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from trebol.airflow import alerts
from trebol.airflow.policy import DEFAULT_ARGS, task_policy
from trebol.erasure.identifiers import MAX_LENGTH, REQUEST_KINDS
from trebol.erasure.requests import MAX_REQUESTED_BY
from trebol.settings import load_settings

SETTINGS = load_settings()
CUSTOMERS = SETTINGS.expected_customers  # the task timeouts grow with them (task_policy)


@dag(
    dag_id="trebol_erasure",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # a failed step alerts like the nightly's (its error lines never hold the identifier)
    default_args={**DEFAULT_ARGS, "retry_delay": timedelta(seconds=SETTINGS.retry_delay_seconds),
                  "on_failure_callback": alerts.on_task_failure},
    params={
        "identifier_type": Param(type="string", enum=list(REQUEST_KINDS),
                                 description="what the identifier is"),
        "identifier": Param(type="string", minLength=1, maxLength=MAX_LENGTH,
                            description="the person's email, phone, loyalty card or customer key"),
        "requested_by": Param(type="string", minLength=1, maxLength=MAX_REQUESTED_BY,
                              description="who asked (an operator, a ticket): kept in the audit"),
    },
    tags=["trebol", "erasure", "gdpr"],
    doc_md=__doc__,
)
def trebol_erasure() -> None:
    # Airflow fills params and run_id (context values) when the task runs.
    @task(**task_policy("open_request", CUSTOMERS))
    def open_request(params: dict[str, Any] | None = None,
                     run_id: str | None = None) -> dict[str, Any]:
        from trebol.airflow import erasure_tasks

        return erasure_tasks.open_request(params or {}, str(run_id))

    @task(**task_policy("suppress", CUSTOMERS))
    def suppress(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, int]:
        from trebol.airflow import erasure_tasks

        return erasure_tasks.suppress(params or {}, str(run_id))

    @task(**task_policy("remove_from_destinations", CUSTOMERS))
    def remove_from_destinations(params: dict[str, Any] | None = None,
                                 run_id: str | None = None) -> dict[str, Any]:
        from trebol.airflow import erasure_tasks

        return erasure_tasks.remove_from_destinations(params or {}, str(run_id))

    @task(**task_policy("purge_warehouse", CUSTOMERS))
    def purge_warehouse(params: dict[str, Any] | None = None,
                        run_id: str | None = None) -> dict[str, int]:
        from trebol.airflow import erasure_tasks

        return erasure_tasks.purge_warehouse(params or {}, str(run_id))

    @task(trigger_rule="all_done", **task_policy("close_request", CUSTOMERS))
    def close_request(params: dict[str, Any] | None = None,
                      run_id: str | None = None) -> dict[str, Any]:
        from trebol.airflow import erasure_tasks

        return erasure_tasks.close_request(params or {}, str(run_id))

    open_request() >> suppress() >> remove_from_destinations() >> purge_warehouse() >> close_request()


trebol_erasure()
