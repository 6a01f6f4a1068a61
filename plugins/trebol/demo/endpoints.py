"""The local endpoints the demo's destinations point to, started for a run.

The demo configuration (``config/destinations.yml``) sends some audiences to a webhook through
the Airflow connection ``trebol_demo_webhook``. Unless the environment defines that connection
(``AIRFLOW_CONN_TREBOL_DEMO_WEBHOOK``: a real endpoint), ``trebol run``/``demo``/``sync`` start
:class:`~trebol.demo.webhook_receiver.WebhookReceiver` on 127.0.0.1 with a signing secret made
for the run, and hand the run the connection to it: nothing reaches the internet. The receiver
keeps what it accepted under ``<TREBOL_HOME>/webhook_receiver/<sync>.jsonl``.

Inputs: the settings and the activation config. Outputs: environment variables to add to the
run's (the connection), for as long as the context lasts.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trebol.activation.config import ActivationConfig
from trebol.settings import Settings

DEMO_WEBHOOK_CONN_ID = "trebol_demo_webhook"


def receiver_dir(settings: Settings) -> Path:
    """Where the demo's webhook receiver keeps the batches it accepted."""
    return settings.home / "webhook_receiver"


@contextmanager
def demo_endpoints(settings: Settings, config: ActivationConfig) -> Iterator[dict[str, str]]:
    """Start the demo's webhook receiver when a destination uses its connection and the
    environment does not define it; yield the environment the run needs to reach it."""
    variable = f"AIRFLOW_CONN_{DEMO_WEBHOOK_CONN_ID.upper()}"
    used = any(spec.connection == DEMO_WEBHOOK_CONN_ID for spec in config.destinations.values())
    if not used or os.environ.get(variable):
        yield {}
        return
    from trebol.demo.webhook_receiver import WebhookReceiver

    secret = secrets.token_urlsafe(32)
    with WebhookReceiver([secret], out_dir=receiver_dir(settings)) as receiver:
        yield {variable: json.dumps({"conn_type": "http", "host": receiver.url,
                                     "password": secret})}
