"""The data-quality rules file (``config/quality.yml``): thresholds the suites and views use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from trebol.settings import ConfigError, load_settings


class QualityRulesError(ConfigError):
    """The rules file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class QualityRules:
    """Every threshold of ``quality.yml``, checked."""

    business_opened_on: date
    max_quarantined_share: float
    min_rows_for_share: int
    volume_min_ratio: float
    volume_max_ratio: float
    volume_history_days: int
    volume_min_history_days: int
    volume_min_usual_rows: int
    volume_day_columns: dict[str, str]
    segment_drift_min_ratio: float
    segment_drift_max_ratio: float
    segment_drift_min_customers: int
    max_predicted_clv: float


def _get(document: dict[str, Any], path: str, where: Path) -> Any:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise QualityRulesError(f"{where.name}: {path}: missing")
        value = value[key]
    return value


def _number(document: dict[str, Any], path: str, where: Path, *, whole: bool = False) -> Any:
    value = _get(document, path, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or (whole and not isinstance(value, int)):
        kind = "a whole number" if whole else "a number"
        raise QualityRulesError(f"{where.name}: {path}: {value!r} is not {kind} >= 0")
    return value


def load_rules(path: Path | None = None) -> QualityRules:
    """Parse and check the rules file. Default: the file in TREBOL_CONFIG_DIR."""
    path = path or load_settings().config_file("quality.yml")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise QualityRulesError(f"{path}: cannot read ({error})") from None
    opened = _get(document, "business_opened_on", path)
    if not isinstance(opened, date):
        raise QualityRulesError(f"{path.name}: business_opened_on: {opened!r} is not a date")
    day_columns = _get(document, "raw.volume.day_columns", path) or {}
    if not isinstance(day_columns, dict):
        raise QualityRulesError(f"{path.name}: raw.volume.day_columns: not a mapping")
    rules = QualityRules(
        business_opened_on=opened,
        max_quarantined_share=float(_number(document, "raw.max_quarantined_share", path)),
        min_rows_for_share=_number(document, "raw.min_rows_for_share", path, whole=True),
        volume_min_ratio=float(_number(document, "raw.volume.min_ratio", path)),
        volume_max_ratio=float(_number(document, "raw.volume.max_ratio", path)),
        volume_history_days=_number(document, "raw.volume.history_days", path, whole=True),
        volume_min_history_days=_number(document, "raw.volume.min_history_days", path, whole=True),
        volume_min_usual_rows=_number(document, "raw.volume.min_usual_rows", path, whole=True),
        volume_day_columns={str(k): str(v) for k, v in day_columns.items()},
        segment_drift_min_ratio=float(_number(document, "marts.segment_drift.min_ratio", path)),
        segment_drift_max_ratio=float(_number(document, "marts.segment_drift.max_ratio", path)),
        segment_drift_min_customers=_number(document, "marts.segment_drift.min_customers", path,
                                            whole=True),
        max_predicted_clv=float(_number(document, "marts.max_predicted_clv", path)),
    )
    if rules.volume_min_ratio >= rules.volume_max_ratio:
        raise QualityRulesError(f"{path.name}: raw.volume.min_ratio must be below max_ratio")
    if rules.segment_drift_min_ratio >= rules.segment_drift_max_ratio:
        raise QualityRulesError(f"{path.name}: marts.segment_drift.min_ratio must be below max_ratio")
    return rules
