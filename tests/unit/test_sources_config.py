"""sources.yml is trusted configuration, but checked when it is read, before any task runs: one
line naming the file and the key for a path leaving the sources folder, a number that is not one,
a table name that is not one, or SQL that does more than its place allows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trebol.extract import load
from trebol.extract.sources import SourceConfigError, load_sources

from ..helpers import PROJECT_DIR

DEMO = (PROJECT_DIR / "config" / "sources.yml").read_text()


def _load(tmp_path: Path, text: str) -> dict:
    config = tmp_path / "sources.yml"
    config.write_text(text)
    return load_sources(config, tmp_path / "exports")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("path: crm/cases/*.csv", "path: ../outside/*.csv",
     r"sources\.crm_cases\.path: '\.\./outside/\*\.csv' must stay inside the sources folder"),
    ("path: crm/cases/*.csv", "path: crm/../../etc/*.csv",
     r"sources\.crm_cases\.path: 'crm/\.\./\.\./etc/\*\.csv' must stay inside"),
    ("path: crm/cases/*.csv", "path: /etc/*.csv",
     r"sources\.crm_cases\.path: '/etc/\*\.csv' is outside the sources folder"),
    ("min: -100000, max: 100000", "min: zero, max: 100000",
     r"sources\.loyalty_points\.columns\.points\.min: 'zero' is not a number"),
    ("min: -100000, max: 100000", "min: .nan, max: 100000",
     r"sources\.loyalty_points\.columns\.points\.min: nan is not a finite number"),
    ("table: pos.stores", "table: pos.stores; drop table x",
     r"sources\.pos_stores\.table: 'pos\.stores; drop table x' is not a table name"),
    ("connection: trebol_pos\n    table: pos.stores", "connection: trebol pos\n    table: pos.stores",
     r"sources\.pos_stores\.connection: 'trebol pos' is not an Airflow connection id"),
    ('valid_when: "in_catalogue"',
     'valid_when: "in_catalogue and exists (select 1 from marts.dim_customers)"',
     r"sources\.pos_ticket_lines\.rules\[0\]\.valid_when: a condition over the row's columns; no subquery"),
    ('valid_when: "in_catalogue"', 'valid_when: "in_catalogue; delete from raw.pos_stores"',
     r"sources\.pos_ticket_lines\.rules\[0\]\.valid_when: one statement, without ';'"),
    ("select l.ticket_id,", "delete from pos.tickets returning l.ticket_id,",
     r"sources\.pos_ticket_lines\.query: a SELECT that only reads the source"),
    ("business_opened_on: 2000-01-01", "business_opened_on: soon",
     r"sources\.yml: business_opened_on: 'soon' is not a date"),
    ("values: [bronze, silver, gold]", "values: bronze",
     r"sources.loyalty_members.columns.tier.values: a list of strings"),
    ("max_text_length: 1000", "max_text_length: lots",
     r"sources\.yml: max_text_length: 'lots' is not a whole"),
    ("points: {type: integer,", "points: {type: integer, max_length: 3,",
     r"columns\.points\.max_length: only for text and json"),
])
def test_a_wrong_sources_file_stops_with_one_line_naming_the_key(tmp_path: Path, old: str, new: str,
                                                                 message: str) -> None:
    assert old in DEMO
    with pytest.raises(SourceConfigError, match=message) as raised:
        _load(tmp_path, DEMO.replace(old, new, 1))
    assert "\n" not in str(raised.value)


def test_an_absolute_path_inside_the_sources_folder_is_accepted(tmp_path: Path) -> None:
    inside = tmp_path / "exports" / "crm" / "cases" / "*.csv"
    sources = _load(tmp_path, DEMO.replace("path: crm/cases/*.csv", f"path: {inside}"))
    assert sources["crm_cases"].path == "crm/cases/*.csv"


def test_a_symbolic_link_leading_outside_the_sources_folder_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "2026-06-01.csv").write_text("secret\n")
    folder = tmp_path / "exports" / "crm" / "cases"
    folder.mkdir(parents=True)
    (folder / "2026-06-02.csv").write_text("case_id\n")
    os.symlink(outside / "2026-06-01.csv", folder / "2026-06-01.csv")
    source = _load(tmp_path, DEMO)["crm_cases"]
    assert load.source_files(source, tmp_path / "exports") == [folder / "2026-06-02.csv"]
