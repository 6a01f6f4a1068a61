"""dbt's Jinja context, as much of it as this project's models use, for sqlfluff's jinja templater
(dbt_project/.sqlfluff): with it `sqlfluff lint dbt_project` renders every model offline, with no
database, no profile and no dbt parse.

sqlfluff's own dbt builtins (apply_dbt_builtins) give ref, source, config, is_incremental, this
and return; this package adds var (the values in dbt_project.yml), env_var (a run's values for
TREBOL_AS_OF_AT and TREBOL_TIMEZONE, else the default), execute, target (the warehouse target),
model and graph (a placeholder audience model and an empty project graph: sqlfluff renders one
file, without dbt's manifest), local_md5, adapter.dispatch (postgres__<macro>, else default__<macro>, as
dbt's dispatch on PostgreSQL), adapter.quote, adapter.get_columns_in_relation (the state columns
int_identity__clusters looks for), exceptions.raise_compiler_error, run_query (one
row: a timestamp and a boolean, what fct_transactions reads before building; or the changed
records' and all records' counts int_identity__clusters reads, a few changed), and the dbt
cross-database macros the models call (dbt.dateadd, date_trunc, listagg, split_part:
dbt-postgres 1.11's SQL). Names defined here take precedence over sqlfluff's builtins.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2
import yaml

_PROJECT_FILE = Path(__file__).resolve().parents[1] / "dbt_project.yml"
_VARS: dict[str, Any] = yaml.safe_load(_PROJECT_FILE.read_text()).get("vars") or {}
_ENV = {"TREBOL_AS_OF_AT": "2026-06-30T00:00:00+02:00", "TREBOL_TIMEZONE": "Europe/Madrid"}

execute = True


class _Target:
    name = "warehouse"
    schema = "marts"
    type = "postgres"


target = _Target()

# the node being rendered, as dbt's `model` (a dict): sqlfluff knows no node, so an audience
# placeholder (macro audience_name); and dbt's flat graph of the project's nodes, empty
model: dict[str, Any] = {"name": "aud_linted", "unique_id": "model.trebol.aud_linted",
                         "resource_type": "model", "raw_code": ""}
graph: dict[str, Any] = {"nodes": {}, "sources": {}, "exposures": {}}


def local_md5(text: str) -> str:
    """dbt's local_md5: the md5 hex digest of a string."""
    return hashlib.md5(text.encode()).hexdigest()


def env_var(name: str, default: str | None = None) -> str:
    if name in _ENV:
        return _ENV[name]
    if default is None:
        raise KeyError(f"env_var('{name}') has no value for linting: add it to sqlfluff_libs")
    return default


def var(name: str, default: Any = None) -> Any:
    value = _VARS.get(name, default)
    if isinstance(value, str) and "{{" in value:
        return jinja2.Template(value).render(env_var=env_var)
    return value


class _ColumnName:
    def __init__(self, name: str) -> None:
        self.name = name


class _Adapter:
    @staticmethod
    def quote(identifier: str) -> str:
        return f'"{identifier}"'

    @staticmethod
    def get_columns_in_relation(relation: Any) -> list[_ColumnName]:
        """The columns of the relation being built (int_identity__clusters'), as dbt's adapter
        lists them: names only."""
        return [_ColumnName(name) for name in ("record_id", "key_record_id",
                                               "trusted_identifiers_digest")]

    @jinja2.pass_context
    def dispatch(self, context: jinja2.runtime.Context, macro_name: str,
                 macro_namespace: str | None = None) -> Any:
        for prefix in ("postgres__", "default__"):
            macro = context.get(prefix + macro_name)
            if macro is not None:
                return macro
        raise KeyError(f"adapter.dispatch: no postgres__ or default__ macro {macro_name}")


adapter = _Adapter()


class _Exceptions:
    @staticmethod
    def raise_compiler_error(message: str) -> None:
        raise RuntimeError(message)


exceptions = _Exceptions()


class _Column:
    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def values(self) -> list[Any]:
        return self._values


class _Table:
    """dbt's run_query result (an agate table), as far as the models read it: one row."""

    def __init__(self, *values: Any) -> None:
        self.columns = [_Column([value]) for value in values]


def run_query(sql: str) -> _Table:
    if "changed_records" in sql:
        return _Table(10, 1000)
    return _Table("2026-06-29 10:00:00+00:00", False)


class _DbtMacros:
    """dbt-postgres 1.11's cross-database macros the models use, rendering the same SQL."""

    @staticmethod
    def dateadd(datepart: str, interval: Any, from_date_or_timestamp: str) -> str:
        return f"{from_date_or_timestamp} + ((interval '1 {datepart}') * ({interval}))"

    @staticmethod
    def bool_or(expression: str) -> str:
        return f"bool_or({expression})"

    @staticmethod
    def date_trunc(datepart: str, date: str) -> str:
        return f"date_trunc('{datepart}', {date})"

    @staticmethod
    def listagg(measure: str, delimiter_text: str = "','", order_by_clause: str | None = None,
                limit_num: int | None = None) -> str:
        if limit_num:
            return (f"array_to_string((array_agg({measure} {order_by_clause or ''}))"
                    f"[1:{limit_num}], {delimiter_text})")
        return f"string_agg({measure}, {delimiter_text} {order_by_clause or ''})"

    @staticmethod
    def split_part(string_text: str, delimiter_text: str, part_number: int) -> str:
        if part_number < 0:
            raise ValueError("split_part: negative parts are not emulated for linting")
        return f"split_part({string_text}, {delimiter_text}, {part_number})"


dbt = _DbtMacros()
