"""The data-quality rules file (``config/quality.yml``): the thresholds the suites judge by."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trebol.settings import ConfigError, load_settings


class QualityRulesError(ConfigError):
    """The rules file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class QualityRules:
    """Every threshold of ``quality.yml``, checked."""

    max_quarantined_share: float
    volume_min_ratio: float
    volume_max_ratio: float
    segment_drift_min_ratio: float
    segment_drift_max_ratio: float
    value_drift_min_ratio: float
    value_drift_max_ratio: float
    min_repeat_p_alive_spread: float
    max_predicted_clv: float

    def parameters(self) -> dict[str, float]:
        """The thresholds as the suites' expectation parameters (``$PARAMETER`` names)."""
        return {"max_quarantined_share": self.max_quarantined_share,
                "volume_min_ratio": self.volume_min_ratio,
                "volume_max_ratio": self.volume_max_ratio,
                "segment_drift_min_ratio": self.segment_drift_min_ratio,
                "segment_drift_max_ratio": self.segment_drift_max_ratio,
                "value_drift_min_ratio": self.value_drift_min_ratio,
                "value_drift_max_ratio": self.value_drift_max_ratio,
                "min_repeat_p_alive_spread": self.min_repeat_p_alive_spread,
                "max_predicted_clv": self.max_predicted_clv,
                "min_predicted_clv": -self.max_predicted_clv}


def _number(document: dict[str, Any], path: str, where: Path) -> float:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise QualityRulesError(f"{where.name}: {path}: missing")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise QualityRulesError(f"{where.name}: {path}: {value!r} is not a number >= 0")
    return float(value)


def load_rules(path: Path | None = None) -> QualityRules:
    """Parse and check the rules file. Default: the file in TREBOL_CONFIG_DIR."""
    path = path or load_settings().config_file("quality.yml")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise QualityRulesError(f"{path}: cannot read ({error})") from None
    rules = QualityRules(
        max_quarantined_share=_number(document, "raw.max_quarantined_share", path),
        volume_min_ratio=_number(document, "raw.volume.min_ratio", path),
        volume_max_ratio=_number(document, "raw.volume.max_ratio", path),
        segment_drift_min_ratio=_number(document, "marts.segment_drift.min_ratio", path),
        segment_drift_max_ratio=_number(document, "marts.segment_drift.max_ratio", path),
        value_drift_min_ratio=_number(document, "marts.value_drift.min_ratio", path),
        value_drift_max_ratio=_number(document, "marts.value_drift.max_ratio", path),
        min_repeat_p_alive_spread=_number(document, "marts.min_repeat_p_alive_spread", path),
        max_predicted_clv=_number(document, "marts.max_predicted_clv", path),
    )
    for name in ("raw.volume", "marts.segment_drift", "marts.value_drift"):
        low, high = (getattr(rules, f"{name.split('.')[1]}_{end}_ratio") for end in ("min", "max"))
        if low >= high:
            raise QualityRulesError(f"{path.name}: {name}.min_ratio must be below max_ratio")
    return rules
