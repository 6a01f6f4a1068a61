"""A destination object from its destinations.yml entry and its Airflow connection.

Credentials and endpoints come only from Airflow connections (``AIRFLOW_CONN_<ID>`` in the
environment works): host = base URL or folder, password = API key, token or signing secret,
extra = JSON options such as Mailchimp's ``list_id``. A file destination without a connection
writes under ``TREBOL_FILE_DROP_DIR``.

Inputs: a :class:`DestinationSpec`. Outputs: a :class:`Destination`.
"""

from __future__ import annotations

import json
from pathlib import Path

from trebol.activation import destinations
from trebol.activation.config import DestinationSpec
from trebol.activation.destinations.base import Connection, Destination, DestinationRejected


def airflow_connection(conn_id: str) -> Connection:
    """The parts of an Airflow connection a destination uses."""
    from airflow.sdk import BaseHook

    try:
        found = BaseHook.get_connection(conn_id)
    except Exception as error:  # Airflow raises AirflowNotFoundException (and others by version)
        raise DestinationRejected(f"Airflow connection {conn_id!r}: {type(error).__name__}: "
                                  "not defined (define it, or AIRFLOW_CONN_"
                                  f"{conn_id.upper()})") from None
    extra = found.extra_dejson if found.extra else {}
    host = found.host or ""
    if found.conn_type in ("http", "https") and host and "://" not in host:
        host = f"{found.conn_type}://{host}" + (f":{found.port}" if found.port else "")
    return Connection(conn_id, host, found.login or "", found.password or "",
                      extra if isinstance(extra, dict) else json.loads(str(extra)))


def build_destination(spec: DestinationSpec, file_drop_dir: Path) -> Destination:
    """The destination of a spec, its connection resolved."""
    if spec.connection is None:
        connection = Connection("", str(file_drop_dir))
    else:
        connection = airflow_connection(spec.connection)
    return destinations.module(spec.type).build(spec.name, connection, spec.options)
