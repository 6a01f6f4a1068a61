"""One run at a time on a warehouse: a session advisory lock held while a run works.

Two runs at once (two ``trebol run``, or a ``trebol run`` beside a backfill) would interleave
their tasks and leave marts built from two dates. The command that starts a run holds this lock
on a connection of its own for the whole run (the lock goes with the connection if the process
dies or the server ends the connection); a second one stops at once with one line naming the
holder (its application name says which command and date, and since when), before any task runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg

LOCK_NAME = "trebol.run"


class RunInProgress(RuntimeError):
    """Another run holds the warehouse; the message names it."""


@contextmanager
def exclusive_run(dsn: str, holder: str) -> Iterator[None]:
    """Hold the warehouse's run lock for the block, as ``holder`` (e.g. ``trebol run
    2026-06-30``); raise :class:`RunInProgress` if another run holds it."""
    with psycopg.connect(dsn, autocommit=True, application_name=holder[:63]) as conn:
        if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (LOCK_NAME,)).fetchone()[0]:
            row = conn.execute("""
                select activity.application_name, activity.pid,
                       to_char(activity.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
                from pg_locks as locks
                inner join pg_stat_activity as activity on activity.pid = locks.pid
                where locks.locktype = 'advisory' and locks.granted and locks.objsubid = 1
                    and locks.objid = (hashtext(%s)::bigint & 4294967295)::oid""",
                               (LOCK_NAME,)).fetchone()
            who = f"{row[0] or 'a session'} (server pid {row[1]}, since {row[2]})" if row else "another run"
            raise RunInProgress(f"another run holds the warehouse: {who}; wait until it ends, "
                                "then run again")
        try:
            yield
        finally:
            # a connection lost meanwhile (the server stopped, restarted or ended it) took the
            # lock with it: the run's own outcome is what to report
            with suppress(psycopg.OperationalError):
                conn.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK_NAME,))


def check_no_run(dsn: str, holder: str) -> None:
    """Raise :class:`RunInProgress` if a run holds the warehouse now; hold nothing after (for a
    command that starts runs elsewhere, e.g. the scheduler's)."""
    with exclusive_run(dsn, holder):
        return
