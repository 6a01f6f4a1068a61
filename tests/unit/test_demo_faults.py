"""The simulator's injected faults stay the faults they claim to be."""

from __future__ import annotations

from datetime import datetime

import pytest

from trebol.demo.faults import FUTURE_YEAR, in_future_year


@pytest.mark.parametrize(("stamp", "moved"), [
    ("2025-06-30T17:45:05+02:00", "2099-06-30T17:45:05+02:00"),
    # 2099 is no leap year: a sale of 29 February 2024 (met at 1 million people over 3 years)
    # once became "2099-02-29", which the POS database's typed column refused, stopping the
    # simulator
    ("2024-02-29T17:45:05+01:00", "2099-02-28T17:45:05+01:00"),
    ("2024-02-29", "2099-02-28"),
])
def test_a_future_date_is_a_valid_date_in_the_future_year(stamp: str, moved: str) -> None:
    assert in_future_year(stamp) == moved
    assert datetime.fromisoformat(moved).year == int(FUTURE_YEAR)
