"""Benchmark: BG/NBD and Gamma-Gamma maximum-likelihood fits on 1,000,000 synthetic customers.

`make bench` (or `python -m tests.bench.clv_fit`) draws BENCH_CUSTOMERS customers (default one
million) from the exact BG/NBD and Gamma-Gamma processes with the simulator's latent parameters
(rate per day Gamma(0.9, scale 0.045), dropout Beta(1.1, 9.0), spend p 6, q 3.5, v 18.75), over
ages of 1 to 730 whole days as the warehouse gives them (so rows group by identical
(x, t_x, T)), fits both models with ``trebol.clv`` and prints one JSON line: fit seconds of each
model, rows and groups, the fitted parameters, and peak memory (tracemalloc peak of the fits,
and the process's maximum resident set size). Target: both fits under 10 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import resource
import time
import tracemalloc

import numpy as np

from trebol.clv import fitting
from trebol.demo import people


def draw(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T, mean repeat spend) of n customers, times in whole days."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(people.RATE_SHAPE, people.RATE_SCALE, n)
    drop = rng.beta(people.DROPOUT_A, people.DROPOUT_B, n)
    T = rng.integers(1, 731, n).astype(float)
    arrivals = rng.poisson(lam * T)
    x = np.minimum(arrivals, rng.geometric(drop)).astype(float)
    t_x = np.where(x > 0, np.floor(T * rng.beta(np.maximum(x, 1), arrivals - x + 1)), 0.0)
    nu = rng.gamma(people.SPEND_Q, 1 / people.SPEND_GAMMA, n)
    spend = np.where(x > 0, rng.gamma(people.SPEND_SHAPE * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1),
                     np.nan)
    return x, t_x, T, spend


def main() -> None:
    n = int(os.environ.get("BENCH_CUSTOMERS", "1000000"))
    started = time.perf_counter()
    x, t_x, T, spend = draw(n)
    draw_seconds = time.perf_counter() - started
    tracemalloc.start()
    started = time.perf_counter()
    bg = fitting.fit_bgnbd(x, t_x, T)
    bg_seconds = time.perf_counter() - started
    started = time.perf_counter()
    gg = fitting.fit_gamma_gamma(x, spend)
    gg_seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({
        "customers": n, "repeat_customers": bg.n_repeat, "bgnbd_groups": bg.n_groups,
        "draw_seconds": round(draw_seconds, 2), "bgnbd_fit_seconds": round(bg_seconds, 2),
        "gamma_gamma_fit_seconds": round(gg_seconds, 2),
        "total_fit_seconds": round(bg_seconds + gg_seconds, 2),
        "bgnbd": {k: round(getattr(bg, k), 4) for k in ("r", "alpha", "a", "b")},
        "gamma_gamma": {k: round(getattr(gg, k), 4) for k in ("p", "q", "v")},
        "iterations": {"bgnbd": bg.iterations, "gamma_gamma": gg.iterations},
        "peak_traced_mib": round(peak / 2**20, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
