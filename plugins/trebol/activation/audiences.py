"""Push audiences (segment lists) to destinations, with consent enforced and an audit trail.

Two steps, with the quality gate between them: ``stage_audiences`` writes each audience's
members for the as-of date into ``activation.audience_members`` (consenting customers with an
email only), the ``activation_audiences`` suite validates that table, and ``push_audience`` sends
exactly the staged rows. Only the ``file`` destination exists so far: a CSV per audience and
as-of date written atomically (temporary file, then rename), recorded in
``activation.push_log``. Staging or pushing the same date again rewrites the same rows.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import yaml

from trebol.settings import ConfigError, load_settings
from trebol.warehouse.address import error_line

DESTINATIONS = ("file",)


class AudienceConfigError(ConfigError):
    """The audiences file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Audience:
    """A named selection of customers and where it goes."""

    name: str
    lifecycle_stage: str
    destination: str


@dataclass(frozen=True)
class PushResult:
    """What one push sent where."""

    audience: str
    destination: str
    as_of_date: str
    rows: int
    target: str
    sha256: str


def load_audiences(path: Path | None = None) -> list[Audience]:
    """Parse the audiences file. Default: the file in TREBOL_CONFIG_DIR."""
    path = path or load_settings().config_file("audiences.yml")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise AudienceConfigError(f"{path}: cannot read ({error_line(error)})") from None
    audiences = []
    for name, spec in (document.get("audiences") or {}).items():
        if spec.get("destination") not in DESTINATIONS:
            raise AudienceConfigError(
                f"{path.name}: audiences.{name}.destination: {spec.get('destination')!r} "
                f"is not one of {DESTINATIONS}")
        if not spec.get("lifecycle_stage"):
            raise AudienceConfigError(f"{path.name}: audiences.{name}.lifecycle_stage: missing")
        audiences.append(Audience(name, spec["lifecycle_stage"], spec["destination"]))
    return audiences


def stage_audiences(conn: psycopg.Connection, audiences: list[Audience],
                    as_of_date: date) -> dict[str, int]:
    """Write the members of every audience for the date (consenting customers with an email)
    into ``activation.audience_members``, replacing the date's rows; members per audience."""
    members: dict[str, int] = {}
    with conn.transaction():
        conn.execute("delete from activation.audience_members where as_of_date = %s", (as_of_date,))
        for audience in audiences:
            members[audience.name] = conn.execute("""
                insert into activation.audience_members (as_of_date, audience, customer_key, email)
                select as_of_date, %s, customer_key, email
                from marts.customer_segments
                where as_of_date = %s and lifecycle_stage = %s
                  and has_marketing_consent and email is not null""",
                (audience.name, as_of_date, audience.lifecycle_stage)).rowcount
    return members


def select_audience(conn: psycopg.Connection, audience: Audience,
                    as_of_date: date) -> list[tuple[str, str]]:
    """(customer_key, email) of the audience's staged members, ordered by key."""
    return conn.execute("""
        select customer_key, email from activation.audience_members
        where as_of_date = %s and audience = %s
        order by customer_key""", (as_of_date, audience.name)).fetchall()


def _write_atomically(path: Path, rows: list[tuple[str, str]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".csv.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("customer_key", "email"))
        writer.writerows(rows)
    os.replace(temporary, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def push_audience(conn: psycopg.Connection, audience: Audience, as_of_date: date,
                  file_drop_dir: Path, run_id: str) -> PushResult:
    """Write one audience for one date to its destination and log it with the run that pushed."""
    rows = select_audience(conn, audience, as_of_date)
    target = file_drop_dir / audience.name / f"{as_of_date.isoformat()}.csv"
    digest = _write_atomically(target, rows)
    with conn.transaction():
        conn.execute("""
            insert into activation.push_log
                (audience, destination, as_of_date, rows_pushed, target, content_sha256, run_id)
            values (%s, %s, %s, %s, %s, %s, %s)
            on conflict (audience, destination, as_of_date) do update set
                rows_pushed = excluded.rows_pushed, target = excluded.target,
                content_sha256 = excluded.content_sha256, pushed_at = now(),
                run_id = excluded.run_id""",
            (audience.name, audience.destination, as_of_date, len(rows), str(target), digest, run_id))
    return PushResult(audience.name, audience.destination, as_of_date.isoformat(), len(rows),
                      str(target), digest)
