"""The dbt unit tests (scoring, segment mapping, cost to serve, identity, staging), run here in
CI: the nightly build leaves them out, as dbt Labs recommends for production builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..helpers import DEMO_DATE, DemoMarts, local_midnight, run_dbt

pytestmark = pytest.mark.integration


def test_dbt_unit_tests_pass(demo_marts: DemoMarts, tmp_path: Path) -> None:
    """Every unit test of the project runs (their models' parents are the demo marts) and passes."""
    run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "test", "--select", "test_type:unit",
            work_dir=tmp_path)
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    declared = set(manifest["unit_tests"])
    statuses = {result["unique_id"]: result["status"] for result in results
                if result["unique_id"].startswith("unit_test.")}
    assert len(declared) >= 20
    assert set(statuses) == declared
    assert set(statuses.values()) == {"pass"}, statuses


@pytest.mark.parametrize("ranges", ["0", "2.5", "many"])
def test_a_wrong_number_of_key_ranges_stops_the_build_naming_the_var(
        demo_marts: DemoMarts, tmp_path: Path, ranges: str) -> None:
    output = run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "compile", "--select",
                     "int_customers__transaction_totals", "--vars",
                     f"{{transaction_totals_key_ranges: {ranges}}}", work_dir=tmp_path,
                     should_fail=True)
    assert (f"customer key ranges must be a whole number from 1 to 256, not {ranges}"
            " (var transaction_totals_key_ranges)") in output
