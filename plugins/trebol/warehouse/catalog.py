"""Small reads of the warehouse every stage needs: whether a relation exists, a query's rows as
a DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    import pandas as pd


def relation_exists(conn: psycopg.Connection, relation: str) -> bool:
    """Whether ``schema.name`` is a table or view the session can see."""
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def query_frame(conn: psycopg.Connection, query: str | sql.Composable, params: Any = None) -> pd.DataFrame:
    """A query's rows as a DataFrame, its columns named as the query names them."""
    import pandas as pd

    cursor = conn.execute(query, params)
    return pd.DataFrame(cursor.fetchall(), columns=[column.name for column in cursor.description])
