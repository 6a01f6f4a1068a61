"""Source declarations (``config/sources.yml``): what to extract, from where, with which schema."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path(__file__).parent / "config" / "sources.yml"
KINDS = ("files", "snapshot")
TYPES = ("text", "numeric", "timestamptz", "boolean")


class SourceConfigError(ValueError):
    """The sources file is wrong; the message names the file, the source and the key."""


@dataclass(frozen=True)
class Column:
    """One declared column and its checks."""

    name: str
    type: str
    required: bool = False
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    not_after_interval_end: bool = False


@dataclass(frozen=True)
class Source:
    """One declared source."""

    name: str
    kind: str
    path: str
    table: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    version_column: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _column(where: str, name: str, spec: dict[str, Any]) -> Column:
    kind = spec.get("type")
    if kind not in TYPES:
        raise SourceConfigError(f"{where}.columns.{name}.type: {kind!r} is not one of {TYPES}")
    bounds = {key: Decimal(str(spec[key])) if key in spec else None for key in ("min", "max")}
    return Column(name, kind, bool(spec.get("required", False)), bounds["min"], bounds["max"],
                  bool(spec.get("not_after_interval_end", False)))


def load_sources(path: Path = DEFAULT_CONFIG) -> dict[str, Source]:
    """Parse and check the sources file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SourceConfigError(f"{path}: cannot read ({error})") from None
    sources: dict[str, Source] = {}
    for name, spec in (document.get("sources") or {}).items():
        where = f"{path.name}: sources.{name}"
        if spec.get("kind") not in KINDS:
            raise SourceConfigError(f"{where}.kind: {spec.get('kind')!r} is not one of {KINDS}")
        for key in ("path", "table", "primary_key", "columns"):
            if not spec.get(key):
                raise SourceConfigError(f"{where}.{key}: missing")
        columns = tuple(_column(where, col, col_spec or {}) for col, col_spec in spec["columns"].items())
        names = {column.name for column in columns}
        for key in [*spec["primary_key"], *([spec["version_column"]] if spec.get("version_column") else [])]:
            if key not in names:
                raise SourceConfigError(f"{where}: key column {key!r} is not among its columns")
        sources[name] = Source(name, spec["kind"], spec["path"], spec["table"],
                               tuple(spec["primary_key"]), columns, spec.get("version_column"))
    if not sources:
        raise SourceConfigError(f"{path}: declares no sources")
    return sources
