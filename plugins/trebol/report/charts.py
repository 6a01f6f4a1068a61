"""The run report's charts as Vega-Lite specifications, built with Altair (installed with Great
Expectations): each function takes one section's facts and returns the spec the page embeds
(``vega-embed`` draws it from the report folder's own scripts, offline)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from trebol.report.timeline import TaskSpan

Spec = dict[str, Any]
WIDTH = 640
STATE_COLOURS = {"success": "#2e7d32", "running": "#1565c0", "up_for_retry": "#f9a825",
                 "failed": "#c62828", "upstream_failed": "#ef6c00", "skipped": "#9e9e9e"}
RISK_COLOURS = {"low": "#2e7d32", "medium": "#f9a825", "high": "#c62828"}


def _spec(chart: alt.TopLevelMixin) -> Spec:
    return chart.configure_view(stroke=None).to_dict()


def task_timeline(spans: list[TaskSpan]) -> Spec:
    """A Gantt-like bar per task instance that ran, coloured by state, in start order."""
    rows = [{"task": span.label, "state": span.state, "start": span.start.isoformat(),
             "end": span.end.isoformat(), "seconds": round(span.seconds or 0.0, 1)}
            for span in spans if span.start is not None and span.end is not None]
    frame = pd.DataFrame(rows, columns=["task", "state", "start", "end", "seconds"])
    states = [state for state in STATE_COLOURS if state in set(frame["state"])] or ["success"]
    chart = alt.Chart(frame).mark_bar(cornerRadius=2).encode(
        x=alt.X("start:T", title="time (UTC)", axis=alt.Axis(format="%H:%M:%S")),
        x2="end:T",
        y=alt.Y("task:N", sort=list(frame["task"]), title=None),
        color=alt.Color("state:N", scale=alt.Scale(domain=states,
                                                    range=[STATE_COLOURS[s] for s in states])),
        tooltip=["task:N", "state:N", alt.Tooltip("seconds:Q", title="seconds"), "start:T", "end:T"],
    ).properties(width=WIDTH, height=max(120, 18 * len(frame)))
    return _spec(chart)


def segment_sizes(sizes: pd.DataFrame, segmentation: str) -> Spec:
    """Customers per segment of one segmentation, the change since the previous snapshot as a
    label beside each bar."""
    frame = sizes[sizes["segmentation"] == segmentation].copy()
    frame["label"] = [f"{count:,} ({change:+,})" for count, change in
                      zip(frame["customers"], frame["change"], strict=True)]
    base = alt.Chart(frame).encode(
        y=alt.Y("segment:N", sort="-x", title=None),
        x=alt.X("customers:Q", title="customers"),
        tooltip=["segment:N", "customers:Q", "previous:Q", "change:Q"])
    bars = base.mark_bar(color="#4c78a8")
    labels = base.mark_text(align="left", dx=4).encode(text="label:N")
    return _spec((bars + labels).properties(width=WIDTH - 200, height=max(60, 22 * len(frame)),
                                            title=segmentation.replace("_", " ")))


def rfm_heatmap(grid: pd.DataFrame) -> Spec:
    """Recency by frequency scores: each cell's colour its customers, its text the customers and
    their mean monetary value."""
    frame = grid.copy()
    frame["label"] = [f"{count:,} · {mean:,.0f}" for count, mean in
                      zip(frame["customers"], frame["mean_monetary"], strict=True)]
    base = alt.Chart(frame).encode(
        x=alt.X("f_score:O", title="frequency score"),
        y=alt.Y("r_score:O", sort="descending", title="recency score"))
    cells = base.mark_rect().encode(
        color=alt.Color("customers:Q", scale=alt.Scale(scheme="blues"), title="customers"),
        tooltip=["r_score:O", "f_score:O", "customers:Q",
                 alt.Tooltip("mean_monetary:Q", title="mean monetary", format=",.2f")])
    dark = float(frame["customers"].max() or 0) / 2 if len(frame) else 0.0  # white text above
    text = base.mark_text(fontSize=11).encode(
        text="label:N",
        color=alt.condition(alt.datum.customers > dark, alt.value("white"), alt.value("black")))
    return _spec((cells + text).properties(width=WIDTH - 120, height=320))


def clv_distribution(histogram: pd.DataFrame) -> Spec:
    """Customers per predicted-CLV bin, stacked by churn-risk band."""
    bands = [band for band in RISK_COLOURS if band in set(histogram["churn_risk_band"])] or ["low"]
    chart = alt.Chart(histogram).mark_bar().encode(
        x=alt.X("bin_start:Q", bin="binned", title="predicted CLV (discounted margin)"),
        x2="bin_end:Q",
        y=alt.Y("sum(customers):Q", title="customers"),
        color=alt.Color("churn_risk_band:N", title="churn risk",
                        scale=alt.Scale(domain=bands, range=[RISK_COLOURS[b] for b in bands])),
        tooltip=[alt.Tooltip("bin_start:Q", format=",.0f"), alt.Tooltip("bin_end:Q", format=",.0f"),
                 "churn_risk_band:N", "customers:Q"],
    ).properties(width=WIDTH, height=240)
    return _spec(chart)


def migration_matrix(migration: pd.DataFrame, segmentation: str) -> Spec:
    """From segment (rows) by to segment (columns) of one segmentation: customers who moved."""
    frame = migration[migration["segmentation"] == segmentation]
    base = alt.Chart(frame).encode(x=alt.X("to_segment:N", title="to"),
                                   y=alt.Y("from_segment:N", title="from"))
    cells = base.mark_rect().encode(
        color=alt.Color("customers:Q", scale=alt.Scale(scheme="greens"), title="customers"),
        tooltip=["from_segment:N", "to_segment:N", "customers:Q"])
    text = base.mark_text(fontSize=11).encode(text=alt.Text("customers:Q", format=","))
    return _spec((cells + text).properties(title=segmentation.replace("_", " ")))


SYNC_COUNTS = ("added", "changed", "removed", "held_out", "failed")


def sync_results(syncs: list[dict[str, Any]]) -> Spec:
    """Per sync, the records it added, changed and removed, held out and failed, stacked."""
    rows = [{"sync": sync["sync"], "count": count, "records": sync[count] or 0}
            for sync in syncs for count in SYNC_COUNTS]
    frame = pd.DataFrame(rows, columns=["sync", "count", "records"])
    chart = alt.Chart(frame).mark_bar().encode(
        y=alt.Y("sync:N", title=None),
        x=alt.X("sum(records):Q", title="records"),
        color=alt.Color("count:N", sort=list(SYNC_COUNTS), title=None),
        tooltip=["sync:N", "count:N", "records:Q"],
    ).properties(width=WIDTH - 200, height=max(60, 24 * len(syncs)))
    return _spec(chart)


def campaign_lift(campaigns: list[dict[str, Any]]) -> Spec:
    """Per campaign, the purchase-rate lift over its holdout (points) with its 95% interval; a
    rule at zero (an interval across it: no effect shown)."""
    frame = pd.DataFrame([{"campaign": c["campaign_id"], "lift": c["purchase_rate_lift"] * 100,
                           "low": c["purchase_rate_lift_low"] * 100,
                           "high": c["purchase_rate_lift_high"] * 100}
                          for c in campaigns if c["purchase_rate_lift"] is not None],
                         columns=["campaign", "lift", "low", "high"])
    base = alt.Chart(frame).encode(y=alt.Y("campaign:N", title=None, axis=alt.Axis(labelLimit=320)))
    interval = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("low:Q", title="purchase-rate lift over the holdout (points, 95% interval)"), x2="high:Q")
    point = base.mark_point(filled=True, size=80).encode(
        x="lift:Q", tooltip=["campaign:N", alt.Tooltip("lift:Q", format="+.1f"),
                             alt.Tooltip("low:Q", format="+.1f"), alt.Tooltip("high:Q", format="+.1f")])
    zero = alt.Chart(pd.DataFrame({"zero": [0]})).mark_rule(color="#888", strokeDash=[4, 4]).encode(
        x="zero:Q")
    return _spec((interval + point + zero).properties(width=WIDTH - 200, height=max(60, 28 * len(frame))))

