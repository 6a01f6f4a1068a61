"""Destination types, one module each (``base`` has the interface they implement).

Each module exposes ``build(name, connection, options) -> Destination``, ``OPTIONS`` (the
destinations.yml keys it takes beyond ``type`` and ``connection``), ``REQUIRED_FIELDS`` (the
destination fields a sync must map) and optionally ``REQUIRED_ANY``, ``CONNECTION_OPTIONAL``
and ``check_option(key, value) -> problem | None``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TYPES: dict[str, str] = {
    "file": "trebol.activation.destinations.file",
    "webhook": "trebol.activation.destinations.webhook",
    "mailchimp": "trebol.activation.destinations.mailchimp",
    "meta_custom_audience": "trebol.activation.destinations.meta",
}


def module(kind: str) -> ModuleType:
    """The module implementing a destination type."""
    return importlib.import_module(TYPES[kind])
