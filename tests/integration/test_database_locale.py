"""The databases Trébol creates (the embedded warehouse's, the demo POS's, the tests'): the builtin
C.UTF-8 locale on a server that has it (PostgreSQL 17 and later, as the embedded one), text
compared byte by byte in code-point order with Unicode's case mapping; an older server's own
default otherwise."""

from __future__ import annotations

import psycopg
import pytest

from trebol.warehouse.embedded import BUILTIN_LOCALE_SERVER_VERSION

from ..helpers import SessionWarehouse, drop_database, fresh_database

pytestmark = pytest.mark.integration


def test_a_created_database_compares_text_by_code_point(test_warehouse: SessionWarehouse) -> None:
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_locale")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            provider = conn.execute("""select datlocprovider from pg_database
                where datname = current_database()""").fetchone()[0]
            if conn.info.server_version >= BUILTIN_LOCALE_SERVER_VERSION:
                locale = conn.execute("""select datlocale from pg_database
                    where datname = current_database()""").fetchone()[0]
                assert (provider, locale) == ("b", "C.UTF-8")
                # code-point order (upper case before lower, accented letters after z) and
                # Unicode's case mapping and letter classes, as the C library's C.UTF-8 gives them
                words = ["zoe", "Zoë", "ábaco", "abaco", "Ñandú"]
                ordered = conn.execute("select array_agg(word order by word) from unnest(%s::text[]) as word",
                                       (words,)).fetchone()[0]
                assert ordered == sorted(words) == ["Zoë", "abaco", "zoe", "Ñandú", "ábaco"]
                cases = conn.execute("select lower('ÁÉÑ'), upper('ñu'), 'ñ' ~ '^[[:alpha:]]$'")
                assert cases.fetchone() == ("áéñ", "ÑU", True)
            else:
                assert provider != "b"
    finally:
        drop_database(test_warehouse.dsn, dsn)
