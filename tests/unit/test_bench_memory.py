"""The whole-pipeline benchmark's memory sampling (tests/bench/pipeline.py): summed PSS counts a
page shared by forked processes once, where summed RSS counts it in each."""

from __future__ import annotations

import subprocess
import sys

import psutil

from tests.bench.pipeline import Sampler

SHARED_MB = 200
# a parent that fills SHARED_MB of memory, then forks: the child shares those pages (copy on
# write) until it writes them; both wait to be sampled
PARENT = f"""
import os, time
block = bytearray(os.urandom({SHARED_MB} * 2**20))
if os.fork() == 0:
    print("forked", flush=True)
time.sleep(60)
"""


def test_summed_pss_counts_shared_pages_once() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "forked"
        sampler = Sampler(parent.pid, None)
        sampler.sample()
    finally:
        for process in [*psutil.Process(parent.pid).children(), psutil.Process(parent.pid)]:
            process.kill()
        parent.wait()
    peaks = sampler.peaks
    assert peaks.tree_rss_mb > 2 * SHARED_MB  # each process's RSS counts the block
    assert SHARED_MB < peaks.tree_mb < 1.5 * SHARED_MB  # PSS: the block once, shared in halves
    assert peaks.together_mb == peaks.tree_mb and peaks.postgres_mb == 0.0
    assert [p["pss_mb"] > SHARED_MB / 2 for p in peaks.together_at["largest"]] == [True, True]
