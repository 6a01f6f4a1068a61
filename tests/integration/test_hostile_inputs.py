"""Hostile input: every case of the corpus below goes through ``load.extract_and_load`` on the
session's PostgreSQL and ends loaded or quarantined line by line, with the exact reason and line,
rows read = loaded + quarantined, and no exception (a data problem is never raised, so never
retried). Each case is a small file written by the test (bytes, so that NULs, byte order marks
and Latin-1 bytes are exactly what the reader gets)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from trebol.extract import load, readers
from trebol.extract.sources import Rule, Source, SourceConfigError, load_sources
from trebol.interval import Interval

from ..helpers import SessionWarehouse

pytestmark = pytest.mark.integration
TZ = "Europe/Madrid"
INTERVAL = Interval(datetime(2026, 6, 1, tzinfo=ZoneInfo(TZ)), datetime(2026, 6, 2, tzinfo=ZoneInfo(TZ)))
DAY = "2026-06-01"
SOURCES_YML = """
business_opened_on: 1900-01-01
sources:
  contacts:
    kind: files
    path: contacts/*.csv
    target: contacts
    primary_key: [contact_id]
    version_column: updated_at
    columns:
      contact_id: {type: text, required: true}
      name: {type: text}
      email: {type: text}
      postal_code: {type: text}
      amount: {type: numeric, min: -1000, max: 1000}
      born_on: {type: date}
      tags: {type: json}
      updated_at: {type: timestamptz, required: true, not_after_interval_end: true}
  orders:
    kind: files
    format: jsonl
    path: orders/*.jsonl
    target: orders
    primary_key: [order_id]
    version_column: version
    columns:
      order_id: {type: text, required: true}
      version: {type: integer, required: true, min: 1}
      email: {type: text}
      amount: {type: numeric}
      lines: {type: json, required: true}
"""
HEADER = "contact_id,name,email,postal_code,amount,born_on,tags,updated_at"
AT = "2026-06-01T09:00:00+02:00"


def contact(key: str, name: str = "Ana", email: str = "ana@example.es", postal_code: str = "28001",
            amount: str = "10.5", born_on: str = "1990-01-31", tags: str = "", updated_at: str = AT) -> str:
    """One CSV line of the contacts source."""
    return ",".join((key, name, email, postal_code, amount, born_on, tags, updated_at))


def order(key: str, **fields: object) -> str:
    """One JSON line of the orders source (fields given as JSON text where a value is a str
    starting with '§', so that NaN, raw NULs or escapes can be written as they are)."""
    record = {"order_id": key, "version": 1, "email": "ana@example.es", "amount": 12.5,
              "lines": [{"sku": "A1", "quantity": 1, "unit_price": 12.5}], **fields}
    return "{" + ", ".join(f"{json.dumps(name)}: "
                           + (value[1:] if isinstance(value, str) and value.startswith("§")
                              else json.dumps(value, ensure_ascii=False))
                           for name, value in record.items()) + "}"


def csv_file(*lines: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode("utf-8")


def jsonl_file(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Case:
    """A hostile file and what loading it must give."""

    id: str
    source: str  # contacts (CSV) or orders (JSON Lines)
    content: bytes
    loaded: int
    quarantined: dict[int, str] = field(default_factory=dict)  # line -> exact reason
    notes: str | None = None
    stored: dict[str, dict[str, object]] = field(default_factory=dict)  # key -> column -> text


LATIN1_LINE = contact("C2", name="Mu\xf1oz").encode("latin-1")
CP1252_LINE = contact("C3", name="\x93quoted\x94").encode("latin-1")
DEEP = "[" * 600 + "]" * 600
# out of a float's range with a two-digit exponent: 1e349
BIG_MANTISSA = "1" + "0" * 250 + "e99"
CASES = [
    # 1. NUL bytes and the JSON escape \u0000 (PostgreSQL text holds no NUL)
    Case("csv_nul_byte", "contacts", csv_file(contact("C1"), contact("C2", email="an\x00a@example.es")),
         1, {3: "NUL byte in field email"}),
    Case("jsonl_nul_byte", "orders", jsonl_file(order("O1"), order("O2", email="§\"an\x00a@x.es\"")),
         1, {2: "NUL byte in field email"}),
    Case("jsonl_nul_escape", "orders", jsonl_file(
        order("O1"), order("O2", email="§\"an\\u0000a\""),
        order("O3", lines="§[{\"sku\": \"A\\u0000\", \"quantity\": 1, \"unit_price\": 1}]")),
         1, {2: "NUL character (\\u0000) in field email",
             3: "NUL character (\\u0000) in field lines[0].sku"}),
    Case("jsonl_nul_outside_a_field", "orders", jsonl_file(order("O1") + "\x00"),
         0, {1: f"NUL byte at column {len(order('O1')) + 1}"}),
    # 2. NaN and Infinity (Python's json reads them, PostgreSQL's jsonb does not)
    Case("jsonl_nan_in_array", "orders", jsonl_file(
        order("O1"), order("O2", lines="§[{\"sku\": \"A1\", \"quantity\": 1, \"unit_price\": NaN}]")),
         1, {2: "NaN in field lines[0].unit_price (JSON has no NaN)"}),
    Case("jsonl_infinity_and_overflow", "orders", jsonl_file(
        order("O1", amount="§Infinity"), order("O2", amount="§-Infinity"), order("O3", amount="§1e400"),
        order("O4", amount="§NaN"), order("O5", amount="§" + BIG_MANTISSA)),
         0, {1: "Infinity in field amount (JSON has no Infinity)",
             2: "-Infinity in field amount (JSON has no Infinity)",
             3: "number 1e400 in field amount (out of range)",
             4: "NaN in field amount (JSON has no NaN)",
             5: f"number {BIG_MANTISSA[:40]} in field amount (out of range)"}),
    Case("jsonl_nan_in_a_field_not_declared", "orders", jsonl_file(order("O1", score="§NaN")), 1),
    # 3. over-long fields: Python's csv limit (128 KB) raises no more; max_length is a check
    Case("csv_field_over_128_kb", "contacts", csv_file(
        contact("C1"), contact("C2", postal_code="9" * 200_000), contact("C3", name="n" * 1_001)),
         1, {3: "postal_code: 200,000 characters, more than the maximum 1,000",
             4: "name: 1,001 characters, more than the maximum 1,000"}),
    Case("jsonl_field_too_long", "orders", jsonl_file(order("O1", email="e" * 5_000)),
         0, {1: "email: 5,000 characters, more than the maximum 1,000"}),
    Case("key_too_many_bytes", "contacts", csv_file(contact("\U0001f600" * 700)),
         0, {2: "contact_id: 2,800 bytes, more than a key may hold (2,000)"}),
    # 4. a UTF-8 byte order mark is skipped: the first record loads
    Case("jsonl_bom", "orders", b"\xef\xbb\xbf" + jsonl_file(order("O1"), order("O2")), 2),
    Case("csv_bom_clean", "contacts", b"\xef\xbb\xbf" + csv_file(contact("C1")), 1),
    Case("csv_bom_with_a_bad_row", "contacts", b"\xef\xbb\xbf" + csv_file(contact("C1"),
                                                                          contact("C2", amount="x")),
         1, {3: "amount: 'x' is not a number"}),
    # 5. a header that cannot be trusted refuses the file; missing and extra columns are noted
    Case("csv_duplicate_column", "contacts", csv_file(
        contact("C1") + ",other@example.es", contact("C2") + ",x@example.es",
        header=HEADER + ",email"),
         0, {2: "duplicate column(s) in the header: email (fields 3, 9)",
             3: "duplicate column(s) in the header: email (fields 3, 9)"},
         notes="file refused: duplicate column(s) in the header: email (fields 3, 9)"),
    Case("csv_semicolons", "contacts", csv_file(
        contact("C1").replace(",", ";"), header=HEADER.replace(",", ";")),
         0, {2: "header has 1 field; expected the 8 fields contact_id, name, email, postal_code, amount, "
                "born_on, tags, updated_at separated by ',' (wrong delimiter ';'?)"},
         notes="file refused: header has 1 field; expected the 8 fields contact_id, name, email, "
               "postal_code, amount, born_on, tags, updated_at separated by ',' (wrong delimiter ';'?)"),
    Case("csv_tabs", "contacts", csv_file(contact("C1").replace(",", "\t"), header=HEADER.replace(",", "\t")),
         0, {2: "header has 1 field; expected the 8 fields contact_id, name, email, postal_code, amount, "
                "born_on, tags, updated_at separated by ',' (wrong delimiter tab?)"},
         notes="file refused: header has 1 field; expected the 8 fields contact_id, name, email, "
               "postal_code, amount, born_on, tags, updated_at separated by ',' (wrong delimiter tab?)"),
    Case("csv_utf16", "contacts", (HEADER + "\n" + contact("C1") + "\n").encode("utf-16"),
         0, {2: "header holds NUL bytes (a UTF-16 file?)", 3: "header holds NUL bytes (a UTF-16 file?)"},
         notes="file refused: header holds NUL bytes (a UTF-16 file?)"),
    Case("csv_columns_reordered", "contacts", csv_file(
        "2026-06-01T09:00:00+02:00,,1990-01-31,5,28001,ana@example.es,Ana,C1",
        header=",".join(reversed(HEADER.split(",")))),
         1, stored={"C1": {"name": "Ana", "amount": "5", "postal_code": "28001"}}),
    Case("csv_columns_reordered_with_a_bad_row", "contacts", csv_file(
        "2026-06-01T09:00:00+02:00,,1990-01-31,5,28001,ana@example.es,Ana,C1",
        "2026-06-01T09:00:00+02:00,,1990-01-31,x,28001,ana@example.es,Ana,C2",
        header=",".join(reversed(HEADER.split(",")))),
         1, {3: "amount: 'x' is not a number"}, stored={"C1": {"name": "Ana", "amount": "5"}}),
    Case("csv_column_renamed", "contacts",
         csv_file(contact("C1"), header=HEADER.replace(",name,", ",full_name,")),
         1, notes="extra column(s) full_name ignored; column(s) name missing",
         stored={"C1": {"name": None, "email": "ana@example.es"}}),
    Case("csv_required_column_renamed", "contacts", csv_file(
        contact("C1"), header=HEADER.replace("updated_at", "modified_at")),
         0, {2: "column(s) updated_at missing from the header"},
         notes="extra column(s) modified_at ignored; column(s) updated_at missing"),
    # encodings: Latin-1 and Windows-1252 bytes, emoji and right-to-left text
    Case("csv_mixed_encodings", "contacts", csv_file(contact("C1", name="Muñoz")) + LATIN1_LINE + b"\n"
         + CP1252_LINE + b"\n", 1, {3: "not valid UTF-8 in field name (Latin-1 bytes?)",
                                      4: "not valid UTF-8 in field name (Latin-1 bytes?)"},
         stored={"C1": {"name": "Muñoz"}}),
    Case("csv_latin1_in_a_column_not_declared", "contacts",
         csv_file(contact("C1") + ",caf\xe9", header=HEADER + ",note").replace(b"caf\xc3\xa9", b"caf\xe9"),
         1, notes="extra column(s) note ignored"),
    Case("emoji_and_right_to_left", "contacts", csv_file(
        contact("C1", name="👩\u200d💻 أحمد شَلوم", email="\u202eevil@example.es")),
         1, stored={"C1": {"name": "👩\u200d💻 أحمد شَلوم", "email": "\u202eevil@example.es"}}),
    Case("jsonl_emoji_and_escapes", "orders", jsonl_file(order("O1", email="§\"\\ud83d\\ude00@x.es\"")),
         1, stored={"O1": {"email": "😀@x.es"}}),
    Case("jsonl_unpaired_surrogate", "orders", jsonl_file(order("O1", email="§\"\\ud800@x.es\"")),
         0, {1: "unpaired surrogate (\\ud800) in field email"}),
    # SQL-looking text is data, stored verbatim
    Case("sql_looking_text", "contacts", csv_file(
        contact("C1", name="\"Robert'); DROP TABLE raw._load_audit;--\"", email="' OR 1=1 --"),
        contact("C2", name="$$; select pg_sleep(10); $$", email="%s %L {} \\x00")),
         2, stored={"C1": {"name": "Robert'); DROP TABLE raw._load_audit;--", "email": "' OR 1=1 --"},
                    "C2": {"name": "$$; select pg_sleep(10); $$", "email": "%s %L {} \\x00"}}),
    # dates: ISO only
    Case("dates_in_several_formats", "contacts", csv_file(
        contact("C1", born_on="1990-01-31"), contact("C2", born_on="31/01/1990"),
        contact("C3", born_on="01/31/1990"), contact("C4", born_on="1990-1-31"),
        contact("C5", born_on="19900131"), contact("C6", born_on="Jan 31 1990"),
        contact("C7", born_on="1990-02-30"), contact("C8", updated_at="2026-06-01 09:00:00"),
        contact("C9", updated_at="1780304400")),
         2, {3: "born_on: '31/01/1990' is not an ISO date", 4: "born_on: '01/31/1990' is not an ISO date",
             5: "born_on: '1990-1-31' is not an ISO date", 6: "born_on: '19900131' is not an ISO date",
             7: "born_on: 'Jan 31 1990' is not an ISO date", 8: "born_on: '1990-02-30' is not an ISO date",
             10: "updated_at: '1780304400' is not an ISO timestamp"}),
    # numbers: negative zero is zero; NaN and infinities are no numbers
    Case("numbers", "contacts", csv_file(
        contact("C1", amount="-0"), contact("C2", amount="-0.0"), contact("C3", amount="NaN"),
        contact("C4", amount="Infinity"), contact("C5", amount="-inf"), contact("C6", amount="\"1,5\""),
        contact("C7", amount="1e3")),
         3, {4: "amount: 'NaN' is not a number", 5: "amount: 'Infinity' is not a number",
             6: "amount: '-inf' is not a number", 7: "amount: '1,5' is not a number"},
         stored={"C1": {"amount": "0"}, "C2": {"amount": "0.0"}, "C7": {"amount": "1000"}}),
    # lines a reader cannot read
    Case("csv_malformed_lines", "contacts", csv_file(
        contact("C1"), contact("C2", name="\"unbalanced"), contact("C3") + ",extra", "C4,short", "",
        "   ", contact("C5")),
         2, {3: "malformed CSV line (unbalanced quote)", 4: "expected 8 fields as in the header, got 9",
             5: "expected 8 fields as in the header, got 2"}),
    Case("csv_crlf", "contacts", csv_file(contact("C1"), contact("C2")).replace(b"\n", b"\r\n"), 2),
    Case("csv_json_nested_too_deep", "contacts", csv_file(
        contact("C1", tags=f"\"{DEEP}\""), contact("C2", tags="\"" + "[" * 20_000 + "]" * 20_000 + "\""),
        contact("C3", tags="\"[" + "[1]," * 600 + "[]]\"")),
         1, {2: "tags: JSON nested deeper than 500 levels", 3: "tags: JSON nested deeper than 500 levels"}),
    Case("jsonl_nested_too_deep", "orders", jsonl_file(
        order("O1", lines=f"§{DEEP}"), order("O2", lines="§" + "[" * 100_000 + "]" * 100_000)),
         0, {1: "lines: JSON nested deeper than 500 levels", 2: "JSON nested too deeply to read"}),
    Case("jsonl_not_objects", "orders", jsonl_file(
        "[1, 2]", "{\"order_id\": ", order("O1", amount="§" + "9" * 5_000), "\"text\""),
         0, {1: "not a JSON object", 2: "not valid JSON (Expecting value at column 14)",
             3: "not valid JSON (Exceeds the limit (4300 digits) for integer string conversion)",
             4: "not a JSON object"}),
    Case("jsonl_latin1", "orders", jsonl_file(order("O1"), order("O2", email="mu\xf1oz@x.es"))
         .replace(b"mu\xc3\xb1oz", b"mu\xf1oz"), 1, {2: "not valid UTF-8 in field email (Latin-1 bytes?)"}),
    Case("duplicates_and_missing_keys", "contacts", csv_file(contact("C1"), contact("C1"), contact(" ")),
         1, {3: "duplicate key (contact_id=C1): superseded by line 2", 4: "contact_id: missing value"}),
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Source]:
    """The corpus's two sources, read from a sources.yml (so the default maximum lengths hold)."""
    config = tmp_path_factory.mktemp("hostile") / "sources.yml"
    config.write_text(SOURCES_YML)
    return load_sources(config)


def _named(source: Source, name: str) -> Source:
    """The source under another name: its own raw table, audit and quarantine rows."""
    return replace(source, name=name, target=name, path=f"{name}/*.{source.format}")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input_is_loaded_or_quarantined_line_by_line(test_warehouse: SessionWarehouse,
                                                              sources: dict[str, Source],
                                                              tmp_path: Path, case: Case) -> None:
    source = _named(sources[case.source], f"h_{case.id}")
    path = tmp_path / source.name / f"{DAY}.{source.format}"
    path.parent.mkdir()
    path.write_bytes(case.content)
    with test_warehouse.connect() as conn:
        [result] = load.extract_and_load(conn, source, tmp_path, INTERVAL, 0, TZ)
        reasons = dict(conn.execute("select line_number, reason from raw._quarantine where source = %s",
                                    (source.name,)).fetchall())
        audit = conn.execute("select rows_read, rows_loaded, rows_quarantined, notes from raw._load_audit "
                             "where source = %s", (source.name,)).fetchone()
        key = source.primary_key[0]
        stored = {row[key]: row for row in conn.cursor(row_factory=psycopg.rows.dict_row).execute(
            f"select * from raw.{source.target}").fetchall()}
    assert reasons == case.quarantined
    assert (result.rows_loaded, result.rows_quarantined) == (case.loaded, len(case.quarantined))
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    assert audit == (result.rows_read, case.loaded, len(case.quarantined), case.notes)
    assert len(stored) <= case.loaded
    for record, values in case.stored.items():
        assert {column: None if stored[record][column] is None else str(stored[record][column])
                for column in values} == values


def _quarantined(conn: psycopg.Connection, source: str) -> dict[int, tuple[str, object, str]]:
    return {line: (reason, key, payload) for line, reason, key, payload in conn.execute(
        "select line_number, reason, record_key, payload from raw._quarantine where source = %s",
        (source,)).fetchall()}


def test_a_quarantined_crm_row_keeps_its_contact_id_when_it_can_be_read(
        test_warehouse: SessionWarehouse, tmp_path: Path) -> None:
    """raw._quarantine.record_key: the key of a rejected row whose key fields can still be read
    (a Latin-1 byte in a name, a failed check, a duplicate), null when the key itself cannot."""
    source = replace(load_sources()["crm_contacts"], name="h_crm_contacts", target="h_crm_contacts",
                     path="crm/contacts/*.csv")
    header = ("contact_id,first_name,last_name,email,phone,postal_code,marketing_consent,"
              "consent_updated_at,unsubscribed_at,updated_at")
    rest = "ana@example.es,+34600000000,28001,true,2026-05-01T10:00:00+02:00,,2026-05-31T10:00:00+02:00"
    folder = tmp_path / "crm" / "contacts"
    folder.mkdir(parents=True)
    (folder / "2026-05-31.csv").write_bytes("\n".join([
        header, f"C1,Ana,Pérez,{rest}", f"C123,Ana,Muñoz,{rest}"]).encode() + b"\n")
    (folder / "2026-06-01.csv").write_bytes(b"\n".join([
        header.encode(), f"C1,Ana,Pérez,{rest}".encode(),
        f"C123,Ana,Mu\xf1oz,{rest}".encode("latin-1"),  # the name cannot be read, the key can
        f"C\xf1,Ana,Ruiz,{rest}".encode("latin-1"),  # the key itself cannot be read
        f"C5,Eva,Gil,{rest}".replace(",true,", ",maybe,").encode(),  # a check fails
        f"C6,Eva,Gil,{rest},surplus".encode(),  # the field count does not match
        f"C7,Eva,\"Gil,{rest}".encode(),  # unbalanced quote
        f"C8,Eva,Gil,{rest}".replace("ana@", "an\x00a@").encode(),  # NUL byte in the email
    ]) + b"\n")
    with test_warehouse.connect() as conn:
        first, second = load.extract_and_load(conn, source, tmp_path, INTERVAL, 0, TZ)
        quarantined = _quarantined(conn, source.name)
        current = conn.execute("select contact_id, _unreadable from raw.h_crm_contacts "
                               "where _valid_to is null order by 1").fetchall()
    assert (first.rows_loaded, second.rows_read, second.rows_loaded, second.rows_quarantined) == (2, 7, 1, 6)
    assert {line: (reason, key) for line, (reason, key, _) in quarantined.items()} == {
        3: ("not valid UTF-8 in field last_name (Latin-1 bytes?)", {"contact_id": "C123"}),
        4: ("not valid UTF-8 in field contact_id (Latin-1 bytes?)", None),
        5: ("marketing_consent: 'maybe' is not a boolean", {"contact_id": "C5"}),
        6: ("expected 10 fields as in the header, got 11", None),
        7: ("malformed CSV line (unbalanced quote)", None),
        8: ("NUL byte in field email", {"contact_id": "C8"}),
    }
    assert quarantined[3][2] == f"C123,Ana,Muñoz,{rest}", "the original text, its byte shown as Latin-1"
    assert quarantined[8][2] == f"C8,Eva,Gil,{rest}".replace("ana@", "an\u2400a@"), "a NUL shown as ␀"
    # C123's row could not be read but its key could: the contact stays, flagged unreadable (its
    # consent fails safe); C5 and C8 were never known, so there is nothing to carry over
    assert current == [("C1", False), ("C123", True)]


def test_a_refused_snapshot_is_not_applied(test_warehouse: SessionWarehouse, tmp_path: Path) -> None:
    """A snapshot whose header repeats a column says nothing about who is gone: every line is
    quarantined (with its key, read from its unambiguous field) and the history is untouched."""
    source = replace(load_sources()["crm_contacts"], name="h_crm_refused", target="h_crm_refused",
                     path="crm/contacts/*.csv")
    header = ("contact_id,first_name,last_name,email,phone,postal_code,marketing_consent,"
              "consent_updated_at,unsubscribed_at,updated_at")
    rest = "+34600000000,28001,true,2026-05-01T10:00:00+02:00,,2026-05-31T10:00:00+02:00"
    folder = tmp_path / "crm" / "contacts"
    folder.mkdir(parents=True)
    (folder / "2026-05-31.csv").write_text(f"{header}\nC1,Ana,Pérez,a@x.es,{rest}\n")
    (folder / "2026-06-01.csv").write_text(f"{header.replace('last_name', 'email')}\n"
                                           f"C1,Ana,Pérez,a@x.es,{rest}\n")
    with test_warehouse.connect() as conn:
        _, second = load.extract_and_load(conn, source, tmp_path, INTERVAL, 0, TZ)
        history = conn.execute("select contact_id, _valid_from, _valid_to from raw.h_crm_refused"
                               ).fetchall()
        quarantined = _quarantined(conn, source.name)
    assert (second.rows_read, second.rows_loaded, second.rows_quarantined) == (1, 0, 1)
    assert second.notes == ("file refused: duplicate column(s) in the header: email (fields 3, 4); "
                            "snapshot not applied: every line refused for the header")
    assert quarantined == {2: ("duplicate column(s) in the header: email (fields 3, 4)",
                               {"contact_id": "C1"}, f"C1,Ana,Pérez,a@x.es,{rest}")}
    assert history == [("C1", date(2026, 5, 31), None)]


def test_a_rule_that_raises_on_some_rows_quarantines_them(test_warehouse: SessionWarehouse,
                                                           sources: dict[str, Source],
                                                           tmp_path: Path) -> None:
    """A rule whose SQL raises on a value (a cast) is evaluated row by row: the rows it raises on
    get its reason and the error, the others their verdict; a rule that cannot run at all is a
    configuration error naming it."""
    rule = Rule("lines: the first line's quantity must be at least 1",
                "(lines->0->>'quantity')::integer >= 1")
    source = replace(_named(sources["orders"], "h_rule"), rules=(rule,))
    (tmp_path / "h_rule").mkdir()
    (tmp_path / "h_rule" / f"{DAY}.jsonl").write_bytes(jsonl_file(
        order("O1"), order("O2", lines=[{"sku": "A", "quantity": "two"}]),
        order("O3", lines=[{"sku": "A", "quantity": 0}])))
    broken = replace(source, name="h_rule_broken", target="h_rule_broken", path="h_rule/*.jsonl",
                     rules=(Rule("never", "no_such_column > 0"),))
    with test_warehouse.connect() as conn:
        [result] = load.extract_and_load(conn, source, tmp_path, INTERVAL, 0, TZ)
        reasons = dict(conn.execute("select line_number, reason from raw._quarantine where source = %s",
                                    (source.name,)).fetchall())
        with pytest.raises(SourceConfigError, match=r"sources\.h_rule_broken\.rules\[0\]\.valid_when: "
                           r"does not run \(column \"no_such_column\" does not exist"):
            load.extract_and_load(conn, broken, tmp_path, INTERVAL, 0, TZ)
        assert conn.execute("select count(*) from raw._load_audit where source = 'h_rule_broken'"
                            ).fetchone()[0] == 0
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 1, 2)
    assert reasons == {2: f"{rule.reason} (invalid input syntax for type integer: \"two\")",
                       3: rule.reason}


def test_a_line_longer_than_the_readers_limit_is_quarantined_unread(
        test_warehouse: SessionWarehouse, sources: dict[str, Source], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A line longer than MAX_LINE_CHARACTERS (64 MiB; 2,000 characters here) is never held
    whole: it is quarantined with its length and its first characters; the lines after it load."""
    monkeypatch.setattr(readers, "MAX_LINE_CHARACTERS", 2_000)
    for kind, content, line in (
            ("contacts", csv_file(contact("C1", postal_code="9" * 5_000), contact("C2")), 2),
            ("orders", jsonl_file(order("O1", email="e" * 5_000), order("O2")), 1)):
        source = _named(sources[kind], f"h_long_line_{kind}")
        path = tmp_path / source.name / f"{DAY}.{source.format}"
        path.parent.mkdir()
        path.write_bytes(content)
        length = len(content.decode().splitlines()[line - 1])
        with test_warehouse.connect() as conn:
            [result] = load.extract_and_load(conn, source, tmp_path, INTERVAL, 0, TZ)
            [(number, reason, payload)] = conn.execute(
                "select line_number, reason, payload from raw._quarantine where source = %s",
                (source.name,)).fetchall()
        assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (2, 1, 1)
        assert (number, reason) == (line, f"line of {length:,} characters, longer than the reader's "
                                          "limit of 2,000")
        assert len(payload) == readers.PREVIEW_CHARACTERS + 1 and payload.endswith("…")


def test_a_file_name_that_is_not_utf8_is_loaded(test_warehouse: SessionWarehouse,
                                                sources: dict[str, Source], tmp_path: Path) -> None:
    """A file name with a Latin-1 byte (as a Windows share may deliver it) is its batch id, shown
    as Latin-1 in the audit, and is not loaded twice."""
    source = _named(sources["contacts"], "h_file_name")
    folder = tmp_path / source.name
    folder.mkdir()
    Path(os.fsdecode(bytes(folder) + b"/2026-06-01-caf\xe9.csv")).write_bytes(
        csv_file(contact("C1"), contact("C2", amount="x")))
    with test_warehouse.connect() as conn:
        [result] = load.extract_and_load(conn, source, tmp_path, INTERVAL, 0, TZ)
        again = load.extract_and_load(conn, source, tmp_path, INTERVAL, 0, TZ)
    assert (result.batch_id, result.rows_loaded, result.rows_quarantined) == (
        f"{source.name}/2026-06-01-café.csv", 1, 1)
    assert again == [], "the file is known by its shown name: not loaded twice"
