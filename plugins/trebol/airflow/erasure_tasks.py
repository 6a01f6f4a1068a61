"""The bodies of the erasure DAG's tasks (``dags/trebol_erasure.py``), one typed function each.

Each takes the run's params (``identifier_type``, ``identifier``, ``requested_by``) and run id,
never the Airflow context; connects as the eraser (Airflow connection
``trebol_warehouse_eraser``: ``connections.ERASER_CONN_ID``); calls one step of
``trebol.erasure.requests``; and returns counts for XCom, never the identifier. A deterministic
error (a refused identifier, no salt, a destination refusing a removal, a wrong configuration)
fails the task without retry; a connection, a lock or a destination that is down is retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from trebol.activation.config import load_activation
from trebol.activation.endpoints import build_destination
from trebol.airflow.connections import ERASER_CONN_ID, warehouse_connection
from trebol.airflow.tasks import final_on_deterministic_errors
from trebol.erasure import requests
from trebol.erasure.requests import ErasureRequest
from trebol.extract.sources import load_sources
from trebol.settings import load_settings


def erasure_request(params: Mapping[str, Any], run_id: str) -> ErasureRequest:
    """The request a DAG run carries (its id made from the run id)."""
    return ErasureRequest(requests.request_id_for(run_id), run_id,
                          str(params.get("identifier_type", "")), str(params.get("identifier", "")),
                          str(params.get("requested_by", "")))


@final_on_deterministic_errors
def open_request(params: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Record the request and check the identifier and the salt."""
    with warehouse_connection(ERASER_CONN_ID) as conn:
        return requests.open_request(conn, erasure_request(params, run_id), load_settings())


@final_on_deterministic_errors
def suppress(params: Mapping[str, Any], run_id: str) -> dict[str, int]:
    """Resolve the person and add their identifiers' salted hashes to the suppression list."""
    with warehouse_connection(ERASER_CONN_ID) as conn:
        return requests.suppress(conn, erasure_request(params, run_id), load_settings())


@final_on_deterministic_errors
def remove_from_destinations(params: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Remove the person from every sync's destination (removed and failed per sync)."""
    settings = load_settings()
    with warehouse_connection(ERASER_CONN_ID) as conn:
        return requests.remove_from_destinations(
            conn, erasure_request(params, run_id), settings, load_activation(),
            lambda spec: build_destination(spec, settings.file_drop_dir))


@final_on_deterministic_errors
def purge_warehouse(params: Mapping[str, Any], run_id: str) -> dict[str, int]:
    """Delete the person in every layer of the warehouse (rows per table)."""
    with warehouse_connection(ERASER_CONN_ID) as conn:
        return requests.purge_warehouse(conn, erasure_request(params, run_id), load_settings(),
                                        load_sources().values())


@final_on_deterministic_errors
def close_request(params: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Mark the request completed (or failed, naming the steps not done) and return its audit
    row; fail (no retry) unless it completed, so that the DAG run says so too."""
    with warehouse_connection(ERASER_CONN_ID) as conn:
        row = requests.close_request(conn, erasure_request(params, run_id))
    if row.get("status") != "completed":
        raise AirflowFailException(f"erasure request {row.get('request_id')}: {row.get('status')}"
                                   f" ({row.get('error')})")
    return row
