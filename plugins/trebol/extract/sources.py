"""Source declarations (``config/sources.yml``): what to extract, from where, with which schema.

Kinds:

- ``files``: dated export files (``format: csv`` or ``jsonl``) matched by a glob under
  ``TREBOL_SOURCES_DIR``; every file of the interval (plus the lookback) and every earlier file
  not loaded yet is upserted by primary key or, with a ``version_column``, by primary key and
  version: raw keeps every version of a record (``Source.keeps_versions``), and dbt's staging
  reads the newest one a run as of its moment would have loaded. With
  ``cadence: daily`` (the default; ``none``: irregular) a file dated each day of the interval is
  expected: one missing is recorded in ``raw._missing_files``, a data-quality error (or a warning,
  ``missing_file: warning``);
- ``snapshot``: dated full exports; each new snapshot is diffed against the current rows and
  kept as history (``_valid_from`` / ``_valid_to``). A snapshot that would close more than
  ``max_closed_share`` of the current records (default ``DEFAULT_MAX_CLOSED_SHARE``) is held: none
  of it applied, until an operator confirms it or a corrected file replaces it;
- ``postgres``: a table or query of a PostgreSQL database reached through an Airflow connection,
  extracted by a ``cursor`` column over the interval (plus the lookback); with a
  ``version_column``, every version kept, as for ``files``.

Each column's checks: ``required``, ``min`` / ``max`` (numbers), ``values`` (the only values a
text column may hold), ``not_after_interval_end`` (dates and timestamps), ``max_length`` (text and
json columns, in characters; default ``max_text_length`` for text, 1,000, and ``max_json_length``
for json, 100,000, both settable at the top of the file: no text or JSON value is unbounded);
and, for every date and timestamp of every source, not before the file's ``business_opened_on``.
Besides the checks of each column, ``rules`` hold checks across the columns of a row: a
``reason`` and a SQL condition ``valid_when`` over the row's (typed) columns. A column declared
with ``store: false`` is read and checked like the others (so rules can use it) but not kept in
the raw table: a query can expose a fact about the row (e.g. whether its product exists) that
only a rule needs. A text column holding a personal identifier says which with ``identifies``
(``email``, ``phone``, ``loyalty_card``, ``shop_account``, ``crm_contact``): an erasure request
finds and deletes the person's rows by these columns, and the loader does not load a row whose
identifier is on the suppression list (``trebol.erasure``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from trebol.erasure.identifiers import IDENTIFIER_KINDS
from trebol.settings import ConfigError, load_settings

KINDS = ("files", "snapshot", "postgres")
FORMATS = ("csv", "jsonl")
TYPES = ("text", "integer", "numeric", "boolean", "date", "timestamptz", "json")
# the longest value (characters) of a text or json column without its own max_length, unless the
# top of sources.yml sets max_text_length / max_json_length; other types are bounded by their form
DEFAULT_MAX_LENGTHS = {"text": 1_000, "json": 100_000}
MAX_LENGTH_KEYS = {"text": "max_text_length", "json": "max_json_length"}
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# a source table: table or schema.table, plain lower-case identifiers
TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")
# words a source query may not hold: it reads the source, never changes it
WRITE_WORDS = {"insert", "update", "delete", "merge", "truncate", "drop", "alter", "create",
               "grant", "revoke", "copy", "call", "do", "execute", "vacuum", "lock"}
# a snapshot closing more than this share of the current records is held (a truncated export)
DEFAULT_MAX_CLOSED_SHARE = 0.05
# how often a files or snapshot source delivers: daily (a file dated each day of the interval is
# expected) or none (irregular); a missing expected file is a data-quality error or a warning
CADENCES = ("daily", "none")
MISSING_FILE_SEVERITIES = ("error", "warning")


class SourceConfigError(ConfigError):
    """The sources file is wrong; the message names the file, the source and the key."""


@dataclass(frozen=True)
class Column:
    """One declared column: its raw name, where it comes from, its type and its checks."""

    name: str
    type: str
    source_name: str
    required: bool = False
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    not_after_interval_end: bool = False
    stored: bool = True
    # the only values the column may hold (a category); None: any
    values: tuple[str, ...] | None = None
    # no date or timestamp is before the business opened (sources.yml business_opened_on)
    not_before: date | None = None
    # the longest value in characters (text and json columns); None: no limit
    max_length: int | None = None
    # the kind of personal identifier the column holds (an erased person's rows are found and
    # suppressed by it: trebol.erasure); None: none
    identifies: str | None = None


@dataclass(frozen=True)
class Rule:
    """A check across the columns of one row: a SQL condition the row must satisfy."""

    reason: str
    valid_when: str


@dataclass(frozen=True)
class Source:
    """One declared source."""

    name: str
    kind: str
    target: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    version_column: str | None = None
    path: str | None = None
    format: str = "csv"
    connection: str | None = None
    table: str | None = None
    query: str | None = None
    cursor: str | None = None
    rules: tuple[Rule, ...] = ()
    max_closed_share: float = DEFAULT_MAX_CLOSED_SHARE
    cadence: str = "daily"
    missing_file: str = "error"

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every declared column: what is read and checked."""
        return tuple(column.name for column in self.columns)

    @property
    def stored_column_names(self) -> tuple[str, ...]:
        """The columns kept in the raw table (all but those declared ``store: false``)."""
        return tuple(column.name for column in self.columns if column.stored)

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    @property
    def keeps_versions(self) -> bool:
        """Whether raw keeps every version of a record (a ``files`` or ``postgres`` source with a
        ``version_column``): one row per key and version, dated by ``_available_from``. A
        snapshot keeps its own history (``_valid_from`` / ``_valid_to``)."""
        return self.version_column is not None and self.kind != "snapshot"

    @property
    def raw_key(self) -> tuple[str, ...]:
        """The raw table's key: the primary key, and the version column for a source that keeps
        versions or ``_valid_from`` for a snapshot's history."""
        if self.keeps_versions:
            return (*self.primary_key, self.version_column or "")
        if self.kind == "snapshot":
            return (*self.primary_key, "_valid_from")
        return self.primary_key

    @property
    def identifier_columns(self) -> tuple[Column, ...]:
        """The columns that hold a personal identifier (``identifies``)."""
        return tuple(column for column in self.columns if column.identifies)


def _values(where: str, name: str, spec: dict[str, Any]) -> tuple[str, ...] | None:
    if "values" not in spec:
        return None
    values = spec["values"]
    if spec.get("type") != "text" or not isinstance(values, list) or not values \
            or not all(isinstance(value, str) for value in values):
        raise SourceConfigError(f"{where}.columns.{name}.values: a list of strings, for a text column")
    return tuple(values)


def _bound(where: str, name: str, spec: dict[str, Any], key: str) -> Decimal | None:
    if key not in spec:
        return None
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SourceConfigError(f"{where}.columns.{name}.{key}: {value!r} is not a number")
    try:
        bound = Decimal(str(value))
    except InvalidOperation:
        raise SourceConfigError(f"{where}.columns.{name}.{key}: {value!r} is not a number") from None
    if not bound.is_finite():
        raise SourceConfigError(f"{where}.columns.{name}.{key}: {value!r} is not a finite number")
    return bound


def _length(where: str, value: Any) -> int:
    """A maximum length: a whole number of characters, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SourceConfigError(f"{where}: {value!r} is not a whole number of characters (1 or more)")
    return value


def _max_length(where: str, name: str, spec: dict[str, Any], max_lengths: dict[str, int]) -> int | None:
    kind = spec.get("type")
    if "max_length" not in spec:
        return max_lengths.get(kind)
    if kind not in max_lengths:
        raise SourceConfigError(f"{where}.columns.{name}.max_length: only for text and json columns")
    return _length(f"{where}.columns.{name}.max_length", spec["max_length"])


def _column(where: str, name: str, spec: dict[str, Any], opened_on: date,
            max_lengths: dict[str, int]) -> Column:
    kind = spec.get("type")
    if kind not in TYPES:
        raise SourceConfigError(f"{where}.columns.{name}.type: {kind!r} is not one of {TYPES}")
    if not IDENTIFIER.match(name):
        raise SourceConfigError(f"{where}.columns.{name}: use lower-case letters, digits and _")
    bounds = {key: _bound(where, name, spec, key) for key in ("min", "max")}
    identifies = spec.get("identifies")
    if identifies is not None and (kind != "text" or identifies not in IDENTIFIER_KINDS):
        raise SourceConfigError(f"{where}.columns.{name}.identifies: {identifies!r}: a text column "
                                f"may identify one of {', '.join(IDENTIFIER_KINDS)}")
    return Column(name, kind, str(spec.get("from", name)), bool(spec.get("required", False)),
                  bounds["min"], bounds["max"], bool(spec.get("not_after_interval_end", False)),
                  bool(spec.get("store", True)), _values(where, name, spec),
                  opened_on if kind in ("date", "timestamptz") else None,
                  _max_length(where, name, spec, max_lengths), identifies)


def _confined_path(where: str, pattern: str, sources_dir: Path) -> str:
    """A files or snapshot ``path`` glob, relative to the sources folder it must stay inside (an
    absolute one is accepted inside that folder and made relative)."""
    glob = Path(pattern)
    if glob.is_absolute():
        root = sources_dir.resolve()
        if not glob.is_relative_to(root):
            raise SourceConfigError(f"{where}.path: {pattern!r} is outside the sources folder "
                                    f"{root} (TREBOL_SOURCES_DIR)")
        glob = glob.relative_to(root)
    if ".." in glob.parts or not glob.parts:
        raise SourceConfigError(f"{where}.path: {pattern!r} must stay inside the sources folder "
                                "(TREBOL_SOURCES_DIR): a glob relative to it, without '..'")
    return glob.as_posix()


def _sql_fragment(where: str, key: str, text: str, *, query: bool) -> str:
    """A SQL fragment of the trusted configuration, checked for what it may not do: it is one
    statement (no ';'); a rule's ``valid_when`` reads only the row (no subquery: no SELECT); a
    ``query`` is one SELECT (or WITH ... SELECT) on the source."""
    if ";" in text:
        raise SourceConfigError(f"{where}.{key}: one statement, without ';'")
    words = set(re.findall(r"[a-z_]+", text.lower()))
    if query:
        first = text.lstrip().split(None, 1)[0].lower() if text.strip() else ""
        if first not in ("select", "with") or words & WRITE_WORDS:
            raise SourceConfigError(f"{where}.{key}: a SELECT that only reads the source "
                                    "(no data-changing statement)")
    elif "select" in words:
        raise SourceConfigError(f"{where}.{key}: a condition over the row's columns; "
                                "no subquery (it would read other tables)")
    return text


def _require(where: str, spec: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if not spec.get(key):
            raise SourceConfigError(f"{where}.{key}: missing")


def _source(path: Path, name: str, spec: dict[str, Any], opened_on: date,
            max_lengths: dict[str, int], sources_dir: Path) -> Source:
    where = f"{path.name}: sources.{name}"
    kind = spec.get("kind")
    if kind not in KINDS:
        raise SourceConfigError(f"{where}.kind: {kind!r} is not one of {KINDS}")
    _require(where, spec, "target", "primary_key", "columns")
    if kind == "postgres":
        _require(where, spec, "connection", "cursor")
        if bool(spec.get("table")) == bool(spec.get("query")):
            raise SourceConfigError(f"{where}: give exactly one of table or query")
        if spec.get("table") and not TABLE_NAME.match(str(spec["table"])):
            raise SourceConfigError(f"{where}.table: {spec['table']!r} is not a table name "
                                    "(table or schema.table, lower-case letters, digits and _)")
        if spec.get("query"):
            _sql_fragment(where, "query", str(spec["query"]), query=True)
        if not IDENTIFIER.match(str(spec["connection"])):
            raise SourceConfigError(f"{where}.connection: {spec['connection']!r} is not an "
                                    "Airflow connection id (lower-case letters, digits and _)")
    else:
        _require(where, spec, "path")
        spec = {**spec, "path": _confined_path(where, str(spec["path"]), sources_dir)}
        if spec.get("format", "csv") not in FORMATS:
            raise SourceConfigError(f"{where}.format: {spec.get('format')!r} is not one of {FORMATS}")
    if not IDENTIFIER.match(spec["target"]):
        raise SourceConfigError(f"{where}.target: {spec['target']!r} is not a plain table name")
    columns = tuple(_column(where, col, col_spec or {}, opened_on, max_lengths)
                    for col, col_spec in spec["columns"].items())
    names = {column.name for column in columns}
    keys = [*spec["primary_key"], *[spec[k] for k in ("version_column", "cursor") if spec.get(k)]]
    stored = {column.name for column in columns if column.stored}
    for key in keys:
        if key not in names:
            raise SourceConfigError(f"{where}: key column {key!r} is not among its columns")
        if key not in stored:
            raise SourceConfigError(f"{where}.columns.{key}: a key column cannot be store: false")
    cadence, missing = spec.get("cadence", "daily"), spec.get("missing_file", "error")
    for key, value, allowed in (("cadence", cadence, CADENCES),
                                ("missing_file", missing, MISSING_FILE_SEVERITIES)):
        if key in spec and kind == "postgres":
            raise SourceConfigError(f"{where}.{key}: only for a files or snapshot source")
        if value not in allowed:
            raise SourceConfigError(f"{where}.{key}: {value!r} is not one of {allowed}")
    share = spec.get("max_closed_share", DEFAULT_MAX_CLOSED_SHARE)
    if "max_closed_share" in spec and kind != "snapshot":
        raise SourceConfigError(f"{where}.max_closed_share: only for a snapshot source")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise SourceConfigError(f"{where}.max_closed_share: {share!r} is not a share from 0 to 1")
    rules = []
    for index, rule in enumerate(spec.get("rules") or []):
        if not isinstance(rule, dict) or not rule.get("reason") or not rule.get("valid_when"):
            raise SourceConfigError(f"{where}.rules[{index}]: needs a reason and a valid_when")
        rules.append(Rule(str(rule["reason"]), _sql_fragment(
            where, f"rules[{index}].valid_when", str(rule["valid_when"]), query=False)))
    return Source(name=name, kind=kind, target=spec["target"], primary_key=tuple(spec["primary_key"]),
                  columns=columns, version_column=spec.get("version_column"), path=spec.get("path"),
                  format=spec.get("format", "csv"), connection=spec.get("connection"),
                  table=spec.get("table"), query=spec.get("query"), cursor=spec.get("cursor"),
                  rules=tuple(rules), max_closed_share=float(share), cadence=cadence,
                  missing_file=missing)


def load_sources(path: Path | None = None, sources_dir: Path | None = None) -> dict[str, Source]:
    """Parse and check the sources file (default: the file in TREBOL_CONFIG_DIR; file paths
    confined to ``sources_dir``, default TREBOL_SOURCES_DIR)."""
    settings = load_settings() if path is None or sources_dir is None else None
    path = path or settings.config_file("sources.yml")
    sources_dir = sources_dir or settings.sources_dir
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SourceConfigError(f"{path}: cannot read ({error})") from None
    opened_on = document.get("business_opened_on")
    if not isinstance(opened_on, date):
        raise SourceConfigError(f"{path.name}: business_opened_on: {opened_on!r} is not a date "
                                "(YYYY-MM-DD: no date of any source is earlier)")
    max_lengths = {kind: _length(f"{path.name}: {key}", document.get(key, DEFAULT_MAX_LENGTHS[kind]))
                   for kind, key in MAX_LENGTH_KEYS.items()}
    sources = {name: _source(path, name, spec or {}, opened_on, max_lengths, sources_dir)
               for name, spec in (document.get("sources") or {}).items()}
    if not sources:
        raise SourceConfigError(f"{path}: declares no sources")
    return sources
