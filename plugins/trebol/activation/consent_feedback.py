"""Consent feedback from Mailchimp: the addresses that unsubscribed or bounced there.

Who opts out in a campaign tool (an unsubscribe link, a hard bounce) must stop being pushed
everywhere: :func:`export_mailchimp_opt_outs` pages the audience's members of status
``unsubscribed`` and ``cleaned`` (``GET /lists/{id}/members``, 1,000 a page, only the fields it
keeps, optionally only those changed since a time) and writes them as JSON lines
(``email_address, status, last_changed, list_id``, sorted by address) to a file, atomically
(temporary file in the same folder, then rename), for the warehouse to load as a source.

The nightly task ``pull_consent_feedback`` calls :func:`pull_opt_outs`: for each Mailchimp
destination of destinations.yml, through its Airflow connection, one file
``<TREBOL_SOURCES_DIR>/mailchimp/opt_outs/<destination>/<day>.jsonl`` dated the run's interval
day (as every dated export: the run whose interval ends at D+1 00:00 loads the files dated D), the
source ``mailchimp_opt_outs`` of sources.yml. Each file holds every opt-out of the list as
Mailchimp reports it when pulled, not only the day's changes: a day missed or pulled twice loses
nothing, and the day's volume stays comparable from day to day (the raw checks judge it).
Re-running a day writes its file again with what Mailchimp says then.

Inputs: the Mailchimp connection (as the destination's: host, API key, ``list_id`` extra).
Outputs: the JSONL files; the number of contacts written.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

from trebol.activation.config import ActivationConfig
from trebol.activation.destinations.base import Connection, TransientDestinationError
from trebol.activation.destinations.mailchimp import PAGE_SIZE, api_base_url, list_id_of
from trebol.activation.endpoints import airflow_connection
from trebol.activation.http import HttpTransport, RetryPolicy

OPT_OUT_STATUSES = ("unsubscribed", "cleaned")
# where the exports land under TREBOL_SOURCES_DIR (sources.yml: mailchimp_opt_outs), one folder
# per Mailchimp destination
OPT_OUTS_FOLDER = "mailchimp/opt_outs"
FIELDS = "members.email_address,members.status,members.last_changed,total_items"


@dataclass(frozen=True)
class OptOut:
    """One contact Mailchimp will not mail, and since when."""

    email_address: str
    status: str
    last_changed: str
    list_id: str


def fetch_mailchimp_opt_outs(connection: Connection, *,
                             since_last_changed: str | datetime | None = None,
                             policy: RetryPolicy | None = None, page_size: int = PAGE_SIZE,
                             sleep: Callable[[float], None] = time.sleep) -> list[OptOut]:
    """The list's unsubscribed and cleaned contacts (one per address: the latest change)."""
    where = f"Mailchimp consent feedback ({connection.conn_id})"
    list_id = list_id_of(connection, where)
    since = (since_last_changed.isoformat() if isinstance(since_last_changed, datetime)
             else since_last_changed)
    latest: dict[str, OptOut] = {}
    with HttpTransport(where, api_base_url(connection, where), policy or RetryPolicy(),
                       auth=("trebol", connection.password), sleep=sleep) as http:
        path = f"/lists/{quote(list_id, safe='')}/members"
        for status in OPT_OUT_STATUSES:
            offset = 0
            while True:
                params: dict[str, str | int] = {"status": status, "count": page_size,
                                                "offset": offset, "fields": FIELDS}
                if since:
                    params["since_last_changed"] = since
                try:
                    page = http.request("GET", path, params=params).json()
                    members, total = page.get("members") or [], int(page.get("total_items") or 0)
                except (ValueError, AttributeError, TypeError):
                    raise TransientDestinationError(
                        f"{where}: GET {path}: the response is not a members page") from None
                for member in members:
                    found = OptOut(str(member["email_address"]).strip(),
                                   str(member.get("status") or status),
                                   str(member.get("last_changed") or ""), list_id)
                    key = found.email_address.lower()
                    # a contact that changed status while we paged appears twice: keep the latest
                    if key not in latest or latest[key].last_changed <= found.last_changed:
                        latest[key] = found
                offset += len(members)
                if not members or offset >= total:
                    break
    return [latest[key] for key in sorted(latest)]


def write_jsonl(rows: list[OptOut], path: Path) -> None:
    """Write the rows as JSON lines, atomically: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(asdict(row), ensure_ascii=False, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_mailchimp_opt_outs(connection: Connection, path: Path | str, *,
                              since_last_changed: str | datetime | None = None,
                              policy: RetryPolicy | None = None, page_size: int = PAGE_SIZE,
                              sleep: Callable[[float], None] = time.sleep) -> int:
    """Write the list's unsubscribed and cleaned contacts to ``path`` (JSONL); how many."""
    rows = fetch_mailchimp_opt_outs(connection, since_last_changed=since_last_changed,
                                    policy=policy, page_size=page_size, sleep=sleep)
    write_jsonl(rows, Path(path))
    return len(rows)


def opt_outs_file(sources_dir: Path, destination: str, day: date) -> Path:
    """The export of ``destination``'s opt-outs dated ``day``."""
    return sources_dir / OPT_OUTS_FOLDER / destination / f"{day.isoformat()}.jsonl"


def pull_opt_outs(config: ActivationConfig, sources_dir: Path, day: date, *,
                  connection_of: Callable[[str], Connection] = airflow_connection,
                  sleep: Callable[[float], None] = time.sleep) -> dict[str, int]:
    """Export each Mailchimp destination's opt-outs (all of them) to its file dated ``day``;
    contacts written per destination ({} without a Mailchimp destination)."""
    written: dict[str, int] = {}
    for name, spec in sorted(config.destinations.items()):
        if spec.type != "mailchimp" or spec.connection is None:
            continue  # (a Mailchimp destination always names its connection: destinations.yml)
        written[name] = export_mailchimp_opt_outs(
            connection_of(spec.connection), opt_outs_file(sources_dir, name, day),
            policy=RetryPolicy.from_options(spec.options), sleep=sleep)
    return written
