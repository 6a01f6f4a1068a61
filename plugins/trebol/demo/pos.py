"""The point-of-sale system: an OLTP PostgreSQL schema ``pos`` (stores, products, tickets, ticket lines)
holding the current state of every ticket, loaded with COPY through psycopg 3.

Returns are tickets of their own, pointing at the original ticket, with negative quantities and
amounts. Corrected tickets keep only their corrected state, with ``updated_at`` 1-3 days after the
sale. Faults are extra one-line tickets: absurd amounts, a negative quantity on a sale, a sale dated
2099, a line for a product that does not exist.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from trebol.demo.behaviour import Sales
from trebol.demo.clock import Clock
from trebol.demo.faults import FaultLog, in_future_year, plan_faults
from trebol.demo.reference import STORES, Catalogue
from trebol.demo.spec import SimulatorRefused

POS_FAULT_KINDS = ("absurd_amount", "negative_amount", "future_date", "unknown_product")
ABSURD_CENTS = 9_999_999
# The demo simulator only ever replaces a `pos` schema it created: it marks the schema with this
# comment and checks it (or, for a demo database made before the mark, its manifest table).
MARKER = "created by the Trebol demo simulator; replaced by each simulation"
SCHEMA_SQL = f"""
drop schema if exists pos cascade;
create schema pos;
comment on schema pos is '{MARKER}';
create table pos.stores (store_id text primary key, store_name text not null, city text not null,
    opened_on date not null, updated_at timestamptz not null);
create table pos.products (product_id text primary key, product_name text not null, category text not null,
    unit_price numeric(10,2) not null, unit_cost numeric(10,2) not null, updated_at timestamptz not null);
create table pos.tickets (ticket_id text not null, store_id text not null, loyalty_card_number text,
    sold_at timestamptz not null, original_ticket_id text, total_amount numeric(12,2) not null,
    updated_at timestamptz not null);
create table pos.ticket_lines (ticket_id text not null, line_number int not null, product_id text not null,
    quantity int not null, unit_price numeric(10,2) not null, discount_amount numeric(10,2) not null,
    net_amount numeric(12,2) not null, updated_at timestamptz not null);
create table pos._simulator_manifest (manifest jsonb not null);
"""
CONSTRAINTS_SQL = """
alter table pos.tickets add primary key (ticket_id);
alter table pos.ticket_lines add primary key (ticket_id, line_number);
create index tickets_updated_at on pos.tickets (updated_at);
create index ticket_lines_updated_at on pos.ticket_lines (updated_at);
analyze pos.stores; analyze pos.products; analyze pos.tickets; analyze pos.ticket_lines;
"""


def money(cents: np.ndarray | list[int]) -> list[str]:
    """Cents as ``-12.34`` text."""
    values = cents.tolist() if isinstance(cents, np.ndarray) else cents
    return [f"-{-c // 100}.{-c % 100:02d}" if c < 0 else f"{c // 100}.{c % 100:02d}" for c in values]


class RowSpool:
    """COPY text lines kept in a temporary file until they are loaded (at 1 million people the
    tickets and their lines are gigabytes of text): ``append``, ``extend``, ``len`` like a list,
    ``blocks`` to read them back."""

    BUFFERED = 10_000

    def __init__(self) -> None:
        # lives as long as the spool (deleted when collected): no with-block can hold it
        self._file = tempfile.TemporaryFile()  # noqa: SIM115
        self._buffer: list[str] = []
        self._count = 0

    def append(self, line: str) -> None:
        self._buffer.append(line)
        self._count += 1
        if len(self._buffer) >= self.BUFFERED:
            self._flush()

    def extend(self, lines: list[str]) -> None:
        for line in lines:
            self.append(line)

    def __len__(self) -> int:
        return self._count

    def _flush(self) -> None:
        self._file.write("".join(self._buffer).encode("utf-8"))
        self._buffer.clear()

    def blocks(self, size: int = 1 << 22) -> Iterator[bytes]:
        """The lines written so far, as UTF-8 blocks of about ``size`` bytes."""
        self._flush()
        self._file.seek(0)
        while block := self._file.read(size):
            yield block
        self._file.seek(0, io.SEEK_END)


@dataclass
class PosData:
    """The POS rows as COPY text lines, plus what the other systems need to know about tickets."""

    stores: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    tickets: RowSpool = field(default_factory=RowSpool)
    lines: RowSpool = field(default_factory=RowSpool)
    sale_ticket: dict[int, str] = field(default_factory=dict)  # occasion -> its ticket id
    return_ticket: dict[int, str] = field(default_factory=dict)  # occasion -> its return's ticket id
    return_total: dict[int, int] = field(default_factory=dict)  # occasion -> refunded cents (> 0)


def build_pos(sales: Sales, catalogue: Catalogue, card_of: dict[int, str], clock: Clock,
              rng: np.random.Generator, fault_rate: float, log: FaultLog) -> PosData:
    """Tickets for the store occasions, their returns and the fault tickets, in time order."""
    data = PosData()
    opening = clock.stamp(clock.start_ts)
    data.stores = [f"{s.store_id}\t{s.store_name}\t{s.city}\t{s.opened_on.isoformat()}\t{opening}\n"
                   for s in STORES]
    data.products = [f"{pid}\t{name}\t{cat}\t{price}\t{cost}\t{opening}\n" for pid, name, cat, price, cost in
                     zip(catalogue.product_id, catalogue.product_name, catalogue.category,
                         money(catalogue.price), money(catalogue.cost), strict=True)]

    store_sales = np.flatnonzero(~sales.online)
    returns = store_sales[sales.return_ts[store_sales] >= 0]
    plan = plan_faults(rng, [store_sales.size], POS_FAULT_KINDS, fault_rate)[0]
    fault_base = store_sales[np.array([row for row, _ in plan], dtype=np.int64)]
    fault_kind = [kind for _, kind in plan]
    # one timeline: (instant, type, index) with type 0 sale, 1 return, 2 fault
    key_ts = np.concatenate((sales.ts[store_sales], sales.return_ts[returns], sales.ts[fault_base] + 1))
    kind = np.concatenate((np.zeros(store_sales.size), np.ones(returns.size), np.full(fault_base.size, 2)))
    index = np.concatenate((store_sales, returns, np.arange(fault_base.size)))
    order = np.lexsort((index, kind, key_ts))
    width = max(9, len(str(order.size)))
    # the ticket number of each timeline entry (entries: store sales, returns, faults)
    number = np.empty(order.size, dtype=np.int64)
    number[order] = np.arange(1, order.size + 1)
    ids = [f"T{n:0{width}d}" for n in number[:store_sales.size + returns.size].tolist()]
    data.sale_ticket = dict(zip(store_sales.tolist(), ids[:store_sales.size], strict=True))
    data.return_ticket = dict(zip(returns.tolist(), ids[store_sales.size:], strict=True))
    del ids

    net = sales.net()
    tickets = _TicketText(sales, clock, np.where(sales.correction_ts >= 0, sales.correction_ts, sales.ts),
                          money(sales.totals()), net)
    # in chunks of the timeline: the text of a chunk's stamps and amounts only, never all at once
    for first in range(0, order.size, TICKET_CHUNK):
        part = order[first:first + TICKET_CHUNK]
        chunk = tickets.chunk(kind[part], index[part])
        for o, t, i in zip(part.tolist(), kind[part].tolist(), index[part].tolist(), strict=True):
            tid = f"T{int(number[o]):0{width}d}"
            if t == 0:
                ticket, lines = chunk.sale(tid, i, card_of.get(i, "\\N"), catalogue)
            elif t == 1:
                ticket, lines = chunk.refund(tid, i, card_of.get(i, "\\N"), data.sale_ticket[i], catalogue)
                lines_of = slice(sales.line_start[i], sales.line_start[i + 1])
                data.return_total[i] = int(net[lines_of][sales.line_returned[lines_of]].sum())
            else:
                ticket, lines = _fault_ticket(tid, int(fault_base[i]), fault_kind[i], sales, catalogue,
                                              card_of, clock, rng, log)
            data.tickets.append(ticket)
            data.lines.extend(lines)
    return data


TICKET_CHUNK = 100_000


@dataclass
class _TicketText:
    """What the POS rows of sales and returns are made of; ``chunk`` formats one chunk's text."""

    sales: Sales
    clock: Clock
    updated: np.ndarray  # per occasion: its last change (a correction, else the sale)
    total_text: list[str]  # per occasion
    net: np.ndarray  # per line, cents

    def chunk(self, kinds: np.ndarray, index: np.ndarray) -> _Chunk:
        sales, clock = self.sales, self.clock
        sold, back = index[kinds == 0], index[kinds == 1]
        sale_lines, refund_lines = _line_ranges(sales.line_start, sold), _line_ranges(sales.line_start, back)
        refund_lines = refund_lines[sales.line_returned[refund_lines]]
        return _Chunk(
            self, iter(clock.stamps(sales.ts[sold])), iter(clock.stamps(self.updated[sold])),
            iter(clock.stamps(sales.return_ts[back])),
            iter(zip(sales.line_number[sale_lines].tolist(), sales.product[sale_lines].tolist(),
                     sales.qty[sale_lines].tolist(), money(sales.price[sale_lines]),
                     money(sales.discount[sale_lines]), money(self.net[sale_lines]), strict=True)),
            iter(zip(sales.product[refund_lines].tolist(), (-sales.qty[refund_lines]).tolist(),
                     money(sales.price[refund_lines]), money(-sales.discount[refund_lines]),
                     money(-self.net[refund_lines]), strict=True)))


def _line_ranges(line_start: np.ndarray, occasions: np.ndarray) -> np.ndarray:
    """The lines of ``occasions``, occasion after occasion, each in line order."""
    first, count = line_start[occasions], line_start[occasions + 1] - line_start[occasions]
    offsets = np.repeat(np.cumsum(count) - count, count)
    return np.repeat(first, count) + np.arange(int(count.sum())) - offsets


@dataclass
class _Chunk:
    """The text of one chunk of the timeline, handed out ticket by ticket in timeline order."""

    of: _TicketText
    sold_at: Any
    updated_at: Any
    returned_at: Any
    sale_lines: Any
    refund_lines: Any

    def sale(self, tid: str, i: int, card: str, catalogue: Catalogue) -> tuple[str, list[str]]:
        sales, pid = self.of.sales, catalogue.product_id
        when = next(self.updated_at)
        ticket = (f"{tid}\t{STORES[int(sales.store[i])].store_id}\t{card}\t{next(self.sold_at)}\t\\N\t"
                  f"{self.of.total_text[i]}\t{when}\n")
        lines = []
        for _ in range(int(sales.line_start[i + 1] - sales.line_start[i])):
            number, product, qty, price, disc, net = next(self.sale_lines)
            lines.append(f"{tid}\t{number}\t{pid[product]}\t{qty}\t{price}\t{disc}\t{net}\t{when}\n")
        return ticket, lines

    def refund(self, tid: str, i: int, card: str, sale_tid: str,
               catalogue: Catalogue) -> tuple[str, list[str]]:
        sales, pid = self.of.sales, catalogue.product_id
        start, end = int(sales.line_start[i]), int(sales.line_start[i + 1])
        back = int(sales.line_returned[start:end].sum())
        amount = -int(self.of.net[start:end][sales.line_returned[start:end]].sum())
        when = next(self.returned_at)
        ticket = (f"{tid}\t{STORES[int(sales.return_store[i])].store_id}\t{card}\t{when}\t"
                  f"{sale_tid}\t{money([amount])[0]}\t{when}\n")
        lines = []
        for n in range(1, back + 1):
            product, qty, price, disc, net = next(self.refund_lines)
            lines.append(f"{tid}\t{n}\t{pid[product]}\t{qty}\t{price}\t{disc}\t{net}\t{when}\n")
        return ticket, lines


def _fault_ticket(tid: str, base: int, kind: str, sales: Sales, catalogue: Catalogue, card_of: dict[int, str],
                  clock: Clock, rng: np.random.Generator, log: FaultLog) -> tuple[str, list[str]]:
    """An extra one-line ticket cloned from a real sale, wrong in one way; logged per faulty row."""
    j = int(sales.line_start[base])
    product = catalogue.product_id[sales.product[j]]
    qty, price, disc = int(sales.qty[j]), int(sales.price[j]), 0
    sold = clock.stamp(int(sales.ts[base]) + 1)
    updated = sold
    if kind == "absurd_amount":
        qty, price = 1, ABSURD_CENTS
        log.add("pos", "pos.tickets", None, tid, kind)
        log.add("pos", "pos.ticket_lines", None, tid, kind)
    elif kind == "negative_amount":
        qty = -int(rng.integers(1, 4))
        log.add("pos", "pos.tickets", None, tid, kind)
        log.add("pos", "pos.ticket_lines", None, tid, kind)
    elif kind == "future_date":
        sold = in_future_year(sold)
        log.add("pos", "pos.tickets", None, tid, kind)
    else:
        product = f"P9{int(rng.integers(0, 1000)):03d}"
        log.add("pos", "pos.ticket_lines", None, tid, kind)
    net = qty * price - disc
    card = card_of.get(base, "\\N")
    amount, price_text, disc_text = money([net, price, disc])
    ticket = f"{tid}\t{STORES[sales.store[base]].store_id}\t{card}\t{sold}\t\\N\t{amount}\t{updated}\n"
    return ticket, [f"{tid}\t1\t{product}\t{qty}\t{price_text}\t{disc_text}\t{amount}\t{updated}\n"]


def _copy(cur: psycopg.Cursor, table: str, columns: str, lines: list[str] | RowSpool) -> None:
    with cur.copy(f"copy {table} ({columns}) from stdin") as copy:
        if isinstance(lines, RowSpool):
            for block in lines.blocks():
                copy.write(block)
            return
        for chunk in range(0, len(lines), 50_000):
            copy.write("".join(lines[chunk: chunk + 50_000]).encode("utf-8"))


class NotTheSimulatorsSchema(SimulatorRefused):
    """The database already has a ``pos`` schema the simulator did not create; nothing changed."""


def check_owned(conn: psycopg.Connection, dsn: str) -> None:
    """Refuse (one line) unless schema ``pos`` is missing or was created by the simulator."""
    row = conn.execute("""
        select obj_description(n.oid, 'pg_namespace'),
               to_regclass('pos._simulator_manifest') is not null
        from pg_namespace n where n.nspname = 'pos'""").fetchone()
    if row is not None and row[0] != MARKER and not row[1]:
        from trebol.redaction import redact

        raise NotTheSimulatorsSchema(
            f"schema pos in {redact(dsn)} was not created by the demo simulator: it is left as it is; "
            "give the demo a database of its own (TREBOL_POS_DSN unset, or --pos-dsn)")


def check_pos_owned(dsn: str) -> None:
    """``check_owned`` on its own connection: before the simulator writes anything anywhere."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        check_owned(conn, dsn)


def load_pos(dsn: str, data: PosData, manifest: dict[str, Any]) -> None:
    """(Re)create schema ``pos`` and load it, in one transaction; the manifest row goes in last.
    A ``pos`` schema the simulator did not create is never touched (NotTheSimulatorsSchema)."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("set local client_min_messages = warning")
        check_owned(conn, dsn)
        cur.execute(SCHEMA_SQL)
        _copy(cur, "pos.stores", "store_id, store_name, city, opened_on, updated_at", data.stores)
        _copy(cur, "pos.products", "product_id, product_name, category, unit_price, unit_cost, updated_at",
              data.products)
        _copy(cur, "pos.tickets", "ticket_id, store_id, loyalty_card_number, sold_at, original_ticket_id, "
              "total_amount, updated_at", data.tickets)
        _copy(cur, "pos.ticket_lines", "ticket_id, line_number, product_id, quantity, unit_price, "
              "discount_amount, net_amount, updated_at", data.lines)
        cur.execute(CONSTRAINTS_SQL)
        cur.execute("insert into pos._simulator_manifest (manifest) values (%s::jsonb)",
                    (json.dumps(manifest),))


def read_manifest(dsn: str) -> dict[str, Any] | None:
    """The manifest the POS database holds, or None (no schema, no row, or no server)."""
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            row = conn.execute("select manifest from pos._simulator_manifest limit 1").fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None
