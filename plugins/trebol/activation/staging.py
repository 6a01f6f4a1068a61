"""Stage the audiences for a date: what the quality gate validates and the syncs then send.

For each audience a sync of destinations.yml sends, the rows of the dbt model
``audiences.aud_<name>`` for the as-of date whose customer consents to marketing and has an email
go to ``activation.audience_members``: the customer key, the email, every column of the row as
``fields`` (what the syncs map from), and whether the customer is in the audience's control group.

**Holdouts**: a customer is held out when ``md5(audience || '/' || customer_key)`` read as a
32-bit number, divided by 2^32, is below the audience's ``holdout_share``: deterministic, so a
customer keeps their side across runs while the share is unchanged, and independent between
audiences. Held-out members are staged (``is_holdout``) and recorded in ``activation.holdouts``
with the first date they were drawn at that share; no sync sends them.

An audience whose model is missing, lacks a column a sync maps, or holds a customer twice is
*refused* (``activation.staged_audiences.status``, with the error): its syncs stop with that line
and the other audiences go on. Re-staging a date replaces that date's rows.

Inputs: a warehouse connection (role trebol_activation), the activation config, the as-of date.
Outputs: rows in ``activation.audience_members``, ``staged_audiences`` and ``holdouts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import sql

from trebol.activation.config import ActivationConfig
from trebol.warehouse.ddl import AUDIENCES_SCHEMA

REQUIRED_COLUMNS = ("customer_key", "as_of_date", "email", "has_marketing_consent")
# the bucket of a customer in an audience, uniform in [0, 1): the first 32 bits of an md5
HOLDOUT_BUCKET = ("(('x' || substr(md5({audience} || '/' || customer_key), 1, 8))::bit(32)"
                  "::bigint::numeric / 4294967296)")


@dataclass(frozen=True)
class StagedAudience:
    """What staging made of one audience for a date."""

    audience: str
    status: str
    members: int
    held_out: int
    error: str | None = None


def audience_columns(conn: psycopg.Connection, audience: str) -> list[str]:
    """The columns of an audience model, in order (empty when it does not exist)."""
    return [row[0] for row in conn.execute(
        "select column_name from information_schema.columns where table_schema = %s "
        "and table_name = %s order by ordinal_position", (AUDIENCES_SCHEMA, audience))]


def _problem(conn: psycopg.Connection, config: ActivationConfig, audience: str,
             as_of_date: date) -> str | None:
    columns = audience_columns(conn, audience)
    if not columns:
        return f"{AUDIENCES_SCHEMA}.{audience} does not exist (or this role may not read it)"
    for column in REQUIRED_COLUMNS:
        if column not in columns:
            return f"{AUDIENCES_SCHEMA}.{audience} has no column {column}"
    for index, sync in enumerate(config.syncs):
        if sync.audience != audience:
            continue
        for target, column in sync.fields.items():
            if column not in columns:
                return (f"destinations.yml: syncs[{index}].fields.{target}: {column!r} is not a "
                        f"column of {AUDIENCES_SCHEMA}.{audience}")
    table = sql.Identifier(AUDIENCES_SCHEMA, audience)
    dates = [row[0] for row in conn.execute(sql.SQL(
        "select distinct as_of_date from {} order by 1 limit 3").format(table))]
    if dates and as_of_date not in dates:
        return (f"{AUDIENCES_SCHEMA}.{audience} is as of {', '.join(map(str, dates))}, not "
                f"{as_of_date}: the dbt build of this date has not made it")
    duplicated = conn.execute(sql.SQL(
        "select customer_key, count(*) from {} where as_of_date = %s group by customer_key "
        "having count(*) > 1 order by customer_key limit 3").format(table), (as_of_date,)).fetchall()
    if duplicated:
        keys = ", ".join(f"{key} ({count} rows)" for key, count in duplicated)
        return f"{AUDIENCES_SCHEMA}.{audience} holds customers more than once: {keys}"
    return None


def _stage_one(conn: psycopg.Connection, config: ActivationConfig, audience: str, share: float,
               as_of_date: date) -> StagedAudience:
    problem = _problem(conn, config, audience, as_of_date)
    if problem:
        conn.execute("""insert into activation.staged_audiences
            (as_of_date, audience, status, members, held_out, holdout_share, error)
            values (%s, %s, 'refused', 0, 0, %s, %s)""", (as_of_date, audience, share, problem))
        return StagedAudience(audience, "refused", 0, 0, problem)
    bucket = sql.SQL(HOLDOUT_BUCKET).format(audience=sql.Literal(audience))
    conn.execute(sql.SQL("""
        insert into activation.audience_members
            (as_of_date, audience, customer_key, email, fields, is_holdout)
        select as_of_date, {audience}, customer_key, email, to_jsonb(aud) - 'as_of_date',
               {bucket} < {share}
        from {table} as aud
        where as_of_date = %s and has_marketing_consent and email is not null""").format(
        audience=sql.Literal(audience), bucket=bucket, share=sql.Literal(share),
        table=sql.Identifier(AUDIENCES_SCHEMA, audience)), (as_of_date,))
    members, held_out = conn.execute(
        "select count(*), count(*) filter (where is_holdout) from activation.audience_members "
        "where as_of_date = %s and audience = %s", (as_of_date, audience)).fetchone()
    conn.execute("""
        insert into activation.holdouts (audience, customer_key, holdout_share, assigned_on)
        select audience, customer_key, %s, as_of_date from activation.audience_members
        where as_of_date = %s and audience = %s and is_holdout
        on conflict (audience, customer_key, holdout_share) do update
            set assigned_on = least(activation.holdouts.assigned_on, excluded.assigned_on)""",
                 (share, as_of_date, audience))
    conn.execute("""insert into activation.staged_audiences
        (as_of_date, audience, status, members, held_out, holdout_share)
        values (%s, %s, 'staged', %s, %s, %s)""", (as_of_date, audience, members, held_out, share))
    return StagedAudience(audience, "staged", members, held_out)


def stage_audiences(conn: psycopg.Connection, config: ActivationConfig,
                    as_of_date: date) -> list[StagedAudience]:
    """Stage every audience a sync sends for the date, in one transaction."""
    with conn.transaction():
        conn.execute("delete from activation.audience_members where as_of_date = %s", (as_of_date,))
        conn.execute("delete from activation.staged_audiences where as_of_date = %s", (as_of_date,))
        return [_stage_one(conn, config, audience, share, as_of_date)
                for audience, share in sorted(config.audiences().items())]
