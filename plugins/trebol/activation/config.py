"""The activation's configuration: ``<TREBOL_CONFIG_DIR>/destinations.yml``.

::

    destinations:
      <name>: {type: file|webhook|mailchimp|meta_custom_audience, connection: <airflow conn id>,
               <options of the type>}
    syncs:
      - {name: <optional, default <audience>__<destination>>, audience: aud_<name>,
         destination: <name>, holdout_share: 0.1, fields: {<destination field>: <audience column>}}
    audit:
      retention_days: 400    # sync runs and their records older than this (by as-of date) go

Checked when loaded, before any task runs: a wrong key, type, option, share or mapping raises
:class:`ActivationConfigError`, one line naming the file and the key. Credentials and endpoints
are never here: each destination names an Airflow connection (``AIRFLOW_CONN_<ID>`` works).

Inputs: the YAML file. Outputs: :class:`ActivationConfig`; no I/O beyond the read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from trebol.activation import destinations
from trebol.settings import ConfigError, load_settings
from trebol.warehouse.address import error_line

FILE_NAME = "destinations.yml"
AUDIENCE_NAME = re.compile(r"aud_[a-z][a-z0-9_]{0,55}")
NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
COLUMN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DEST_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
DEFAULT_RETENTION_DAYS = 400
MAX_RETENTION_DAYS = 3650


class ActivationConfigError(ConfigError):
    """destinations.yml is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class DestinationSpec:
    """A destination: its type, Airflow connection and type-specific options."""

    name: str
    type: str
    connection: str | None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncSpec:
    """One audience routed to one destination with a field mapping and a control group."""

    name: str
    audience: str
    destination: str
    holdout_share: float
    fields: Mapping[str, str]  # destination field -> audience column


@dataclass(frozen=True)
class ActivationConfig:
    """Every destination and sync of a deployment."""

    destinations: Mapping[str, DestinationSpec]
    syncs: tuple[SyncSpec, ...]
    retention_days: int = DEFAULT_RETENTION_DAYS

    def sync(self, name: str) -> SyncSpec:
        """The sync of this name; a one-line error naming the known ones."""
        for spec in self.syncs:
            if spec.name == name:
                return spec
        known = ", ".join(spec.name for spec in self.syncs) or "none"
        raise ActivationConfigError(f"{FILE_NAME}: no sync named {name!r} (syncs: {known})")

    def audiences(self) -> dict[str, float]:
        """Each audience some sync sends, with its holdout share."""
        return {spec.audience: spec.holdout_share for spec in self.syncs}


def _fail(where: str, message: str) -> ActivationConfigError:
    return ActivationConfigError(f"{FILE_NAME}: {where}: {message}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"must be a mapping, not {type(value).__name__}")
    return value


def _unknown_keys(spec: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    unknown = sorted(set(map(str, spec)) - set(allowed))
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _destination(name: str, spec: Any) -> DestinationSpec:
    where = f"destinations.{name}"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail(where, "a destination name is lower-case letters, digits and _")
    spec = _mapping(spec, where)
    kind = spec.get("type")
    if kind not in destinations.TYPES:
        raise _fail(f"{where}.type", f"{kind!r} is not one of {', '.join(destinations.TYPES)}")
    module = destinations.module(kind)
    _unknown_keys(spec, {"type", "connection", *module.OPTIONS}, where)
    connection = spec.get("connection")
    if connection is None and not getattr(module, "CONNECTION_OPTIONAL", False):
        raise _fail(f"{where}.connection", "missing: the Airflow connection id of its endpoint "
                                           "and credentials")
    if connection is not None and (not isinstance(connection, str)
                                   or not CONN_ID.fullmatch(connection)):
        raise _fail(f"{where}.connection", f"{connection!r} is not an Airflow connection id")
    options = {key: value for key, value in spec.items() if key not in ("type", "connection")}
    for key, value in options.items():
        problem = module.check_option(key, value) if hasattr(module, "check_option") else None
        if problem is None:
            problem = _check_common_option(key, value, _limits(module))
        if problem:
            raise _fail(f"{where}.{key}", problem)
    return DestinationSpec(name, kind, connection, MappingProxyType(options))


# the retry and limit options every HTTP destination takes (trebol.activation.http.RetryPolicy)
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "max_attempts": (1, 20, True), "backoff_seconds": (0, 600, False),
    "max_backoff_seconds": (0, 3600, False), "timeout_seconds": (0.1, 600, False),
    "max_concurrency": (1, 64, True), "requests_per_second": (0.01, 10_000, False),
    "batch_size": (1, 100_000, True),
}


def _limits(module: Any) -> dict[str, float]:
    """The destination type's own upper bounds (its API's per-call and connection limits)."""
    return {key: getattr(module, constant) for key, constant in
            (("batch_size", "MAX_BATCH_SIZE"), ("max_concurrency", "MAX_CONCURRENCY"))
            if hasattr(module, constant)}


def _check_common_option(key: str, value: Any, limits: Mapping[str, float]) -> str | None:
    if key not in _BOUNDS:
        return None
    low, high, integral = _BOUNDS[key]
    high = min(high, limits.get(key, high))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{value!r} is not a number"
    if integral and not float(value).is_integer():
        return f"{value!r} is not a whole number"
    if not low <= value <= high:
        return f"{value!r} is outside {low:g}..{high:g}"
    return None


SYNC_KEYS = {"name", "audience", "destination", "holdout_share", "fields"}


def _sync(index: int, spec: Any, known: Mapping[str, DestinationSpec]) -> SyncSpec:
    where = f"syncs[{index}]"
    spec = _mapping(spec, where)
    _unknown_keys(spec, SYNC_KEYS, where)
    audience = spec.get("audience")
    if not isinstance(audience, str) or not AUDIENCE_NAME.fullmatch(audience):
        raise _fail(f"{where}.audience", f"{audience!r} is not an audience model name (aud_<name>)")
    destination = spec.get("destination")
    if destination not in known:
        raise _fail(f"{where}.destination",
                    f"{destination!r} is not a destination (known: {', '.join(known) or 'none'})")
    name = spec.get("name", f"{audience}__{destination}")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail(f"{where}.name", f"{name!r}: a sync name is lower-case letters, digits and _")
    share = spec.get("holdout_share", 0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise _fail(f"{where}.holdout_share", f"{share!r} is not a share from 0 up to (not "
                                              "including) 1")
    fields = _mapping(spec.get("fields"), f"{where}.fields")
    if not fields:
        raise _fail(f"{where}.fields", "empty: map at least one destination field to a column")
    for target, column in fields.items():
        if not isinstance(target, str) or not DEST_FIELD.fullmatch(target):
            raise _fail(f"{where}.fields", f"{target!r} is not a destination field name")
        if not isinstance(column, str) or not COLUMN.fullmatch(column):
            raise _fail(f"{where}.fields.{target}", f"{column!r} is not a column name")
    module = destinations.module(known[destination].type)
    missing = sorted(set(module.REQUIRED_FIELDS) - set(fields))
    if missing:
        raise _fail(f"{where}.fields", f"a {known[destination].type} destination needs "
                                       f"{', '.join(missing)}")
    required_any = getattr(module, "REQUIRED_ANY", frozenset())
    if required_any and not set(required_any) & set(fields):
        raise _fail(f"{where}.fields", f"a {known[destination].type} destination needs one of "
                                       f"{', '.join(sorted(required_any))}")
    return SyncSpec(name, audience, destination, float(share), MappingProxyType(dict(fields)))


def parse(document: Any) -> ActivationConfig:
    """The configuration from the parsed YAML document."""
    document = _mapping(document or {}, "top level")
    _unknown_keys(document, {"destinations", "syncs", "audit"}, "top level")
    known = {name: _destination(name, spec)
             for name, spec in _mapping(document.get("destinations") or {}, "destinations").items()}
    raw_syncs = document.get("syncs") or []
    if not isinstance(raw_syncs, list):
        raise _fail("syncs", "must be a list of syncs")
    syncs = tuple(_sync(index, spec, known) for index, spec in enumerate(raw_syncs))
    seen: dict[str, int] = {}
    shares: dict[str, float] = {}
    for index, sync in enumerate(syncs):
        if sync.name in seen:
            raise _fail(f"syncs[{index}].name", f"{sync.name!r} repeats syncs[{seen[sync.name]}]")
        seen[sync.name] = index
        if shares.setdefault(sync.audience, sync.holdout_share) != sync.holdout_share:
            raise _fail(f"syncs[{index}].holdout_share",
                        f"{sync.audience} has one control group: every sync of it needs the "
                        f"same share ({shares[sync.audience]:g})")
    audit = _mapping(document.get("audit") or {}, "audit")
    _unknown_keys(audit, {"retention_days"}, "audit")
    retention = audit.get("retention_days", DEFAULT_RETENTION_DAYS)
    if isinstance(retention, bool) or not isinstance(retention, int) \
            or not 1 <= retention <= MAX_RETENTION_DAYS:
        raise _fail("audit.retention_days", f"{retention!r} is not a whole number of days from 1 "
                                            f"to {MAX_RETENTION_DAYS}")
    return ActivationConfig(MappingProxyType(known), syncs, retention)


def load_activation(path: Path | None = None) -> ActivationConfig:
    """Parse destinations.yml (default: the one in TREBOL_CONFIG_DIR)."""
    path = path or load_settings().config_file(FILE_NAME)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ActivationConfigError(f"{path}: cannot read ({error_line(error)})") from None
    return parse(document)
