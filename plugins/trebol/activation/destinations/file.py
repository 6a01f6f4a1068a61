"""File destination: each delivery of a sync as a folder with the full snapshot, the change file,
a manifest and a done marker.

Layout under the base folder (the ``fs`` Airflow connection's ``extra.path`` or host; without a
connection, ``TREBOL_FILE_DROP_DIR``)::

    <destination>/<sync>/<delivery>/snapshot.csv   customer_key + the mapped fields: everything
                                                   the sync holds after this delivery
    <destination>/<sync>/<delivery>/changes.csv    operation (add|update|remove), customer_key,
                                                   the fields (a removal: the fields last sent;
                                                   an erased person's: none)
    <destination>/<sync>/<delivery>/manifest.json  files with rows, bytes and SHA-256, the schema,
                                                   sync, audience, as-of date, sync run
    <destination>/<sync>/<delivery>/_SUCCESS       written last: read nothing before it exists

``<delivery>`` is the as-of date (``2026-06-30``), or ``2026-06-30.2`` for a second delivery of
the same date (a re-run that found changes). ``format: jsonl`` writes ``.jsonl`` files instead
(one JSON object per line). CSV is RFC 4180: UTF-8 without BOM, header, CRLF, quoted when needed.

A delivery is atomic: batches are written as part files of the sync run (so a run killed midway
and resumed keeps what it had sent), the delivery is assembled in a hidden temporary folder, and
renamed into place; part and temporary folders of other runs are removed when a run opens.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from trebol.activation.destinations.base import (
    ERASED,
    Batch,
    Connection,
    DestinationRejected,
    RecordOutcome,
    SyncContext,
    TransientDestinationError,
)

OPTIONS = frozenset({"format", "batch_size"})
REQUIRED_FIELDS: frozenset[str] = frozenset()
CONNECTION_OPTIONAL = True
FORMATS = ("csv", "jsonl")
DONE_MARKER = "_SUCCESS"


def check_option(key: str, value: Any) -> str | None:
    """A problem with an option's value, or None."""
    if key == "format" and value not in FORMATS:
        return f"{value!r} is not one of {', '.join(FORMATS)}"
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FileDestination:
    """Snapshot and change files per delivery, written atomically."""

    def __init__(self, name: str, base: Path, options: Mapping[str, Any]) -> None:
        self.name = name
        self.base = base
        self.format = options.get("format", "csv")
        self.batch_size = int(options.get("batch_size", 50_000))
        self._fields: dict[str, tuple[str, ...]] = {}  # each open sync's columns

    def _sync_dir(self, context: SyncContext) -> Path:
        return self.base / self.name / context.sync_name

    def _parts(self, context: SyncContext) -> Path:
        return self._sync_dir(context) / f".parts-{context.sync_run_id}"

    def open(self, context: SyncContext) -> None:
        self._fields[context.sync_name] = tuple(context.fields)
        folder = self._sync_dir(context)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DestinationRejected(f"{self.name}: cannot create {folder}: {error.strerror}") from None
        for leftover in folder.glob(".*"):
            if leftover.name != self._parts(context).name and leftover.is_dir():
                shutil.rmtree(leftover)

    def _row(self, operation: str | None, customer_key: str, values: Mapping[str, Any],
             fields: Sequence[str]) -> list[Any]:
        return ([operation] if operation else []) + [customer_key] + [values.get(f) for f in fields]

    def _lines(self, header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
        """The rows encoded in the format, one line each (no header)."""
        if self.format == "jsonl":
            for row in rows:
                yield json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False,
                                 default=str) + "\n"
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for row in rows:
            writer.writerow([_text(value) for value in row])
            if buffer.tell() > 1 << 16:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    def _header(self, header: list[str]) -> str:
        if self.format == "jsonl":
            return ""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(header)
        return buffer.getvalue()

    def send(self, batch: Batch) -> list[RecordOutcome]:
        """Write the batch's changes, encoded, as a part file of its run (rewritten whole when
        resent); the delivery's change file is the parts in order."""
        parts = self.base / self.name / batch.sync_name / f".parts-{batch.sync_run_id}"
        parts.mkdir(parents=True, exist_ok=True)
        fields = self._fields.get(batch.sync_name, ())
        part = parts / f"{batch.batch_no:09d}.part"
        temporary = part.with_suffix(".tmp")
        # an erased person's removal names their key only (no field of theirs written again)
        rows = (self._row(change.operation, change.customer_key,
                          {} if change.reason == ERASED else change.fields, fields)
                for change in batch.changes)
        try:
            with temporary.open("w", encoding="utf-8", newline="") as handle:
                handle.writelines(self._lines(["operation", "customer_key", *fields], rows))
            os.replace(temporary, part)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise self._unwritable(parts, error) from None
        return [RecordOutcome(change.customer_key, True) for change in batch.changes]

    def _unwritable(self, where: Path, error: OSError) -> TransientDestinationError:
        """A disk full or a folder not writable: the run fails, and resumes once it is fixed."""
        return TransientDestinationError(f"{self.name}: cannot write under {where}: "
                                         f"{error.strerror or error}")

    @staticmethod
    def _write(path: Path, chunks: Iterable[str | bytes]) -> dict[str, Any]:
        digest, size, lines = hashlib.sha256(), 0, 0
        with path.open("wb") as handle:
            for chunk in chunks:
                data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
                handle.write(data)
                digest.update(data)
                size += len(data)
                lines += data.count(b"\n")
        return {"name": path.name, "lines": lines, "bytes": size, "sha256": digest.hexdigest()}

    def close(self, context: SyncContext, snapshot: Iterator[Mapping[str, Any]]) -> None:
        """Assemble the delivery: the change file from the run's parts, the snapshot, the
        manifest, the done marker; then rename it into place. No delivery name: nothing changed,
        no files."""
        parts = self._parts(context)
        if not context.delivery:
            shutil.rmtree(parts, ignore_errors=True)
            return
        fields = list(context.fields)
        folder = self._sync_dir(context)
        temporary = folder / f".tmp-{context.delivery}"
        header = ["customer_key", *fields]

        def part_bytes() -> Iterator[bytes]:
            yield self._header(["operation", *header]).encode("utf-8")
            for part in sorted(parts.glob("*.part")) if parts.is_dir() else []:
                with part.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        yield chunk

        rows = (self._row(None, row["customer_key"], row["fields"], fields) for row in snapshot)
        try:
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
            self._assemble(context, temporary, folder / context.delivery, parts, rows,
                           part_bytes())
        except OSError as error:
            shutil.rmtree(temporary, ignore_errors=True)
            raise self._unwritable(folder, error) from None

    def _assemble(self, context: SyncContext, temporary: Path, final: Path, parts: Path,
                  rows: Iterator[list[Any]], changes: Iterator[bytes]) -> None:
        fields = list(context.fields)
        suffix = self.format
        header = ["customer_key", *fields]
        files = [
            self._write(temporary / f"snapshot.{suffix}",
                        itertools.chain([self._header(header)], self._lines(header, rows))),
            self._write(temporary / f"changes.{suffix}", changes),
        ]
        if suffix == "csv":  # records, without the header line
            for described in files:
                described["lines"] -= 1
        for described in files:
            described["rows"] = described.pop("lines")
        manifest = {"sync": context.sync_name, "audience": context.audience,
                    "destination": self.name, "as_of_date": context.as_of_date,
                    "delivery": context.delivery, "sync_run_id": context.sync_run_id,
                    "format": self.format, "schema": header, "files": files}
        (temporary / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                                 encoding="utf-8")
        (temporary / DONE_MARKER).write_bytes(b"")
        if final.exists():  # a resumed run re-assembling its own delivery
            shutil.rmtree(final)
        os.replace(temporary, final)
        shutil.rmtree(parts, ignore_errors=True)


def build(name: str, connection: Connection, options: Mapping[str, Any]) -> FileDestination:
    """The destination; the base folder is the connection's ``extra.path`` or host."""
    base = connection.extra.get("path") or connection.host
    if not base:
        raise DestinationRejected(f"{name}: connection {connection.conn_id!r} names no folder "
                                  "(extra.path)")
    return FileDestination(name, Path(base), options)
