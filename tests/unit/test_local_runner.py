"""``trebol run``'s DAG run child stops with it (trebol.airflow.local_runner)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trebol.airflow import local_runner

# a stand-in for the dag.test() child: it starts a process of its own (a task, dbt) and waits
CHILD = ("import pathlib, subprocess, sys, time; "
         "grandchild = subprocess.Popen(['sleep', '120']); "
         "pathlib.Path(sys.argv[1]).write_text(str(grandchild.pid)); time.sleep(120)")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_sigterm_stops_the_dag_runs_child_and_its_processes(tmp_path: Path) -> None:
    """A ``trebol run`` stopped with SIGTERM once left its child running the DAG, with no run
    lock held, beside the next run of the same date."""
    pid_file = tmp_path / "grandchild.pid"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(pid_file)], start_new_session=True)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(local_runner.DagRunStopped, match="SIGTERM"), \
            local_runner.stopped_with_this_process(child):
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    assert child.returncode is not None
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        if _gone(grandchild):
            break
        time.sleep(0.1)
    assert _gone(grandchild), "the child's own processes are stopped too"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_child_that_ended_is_left_alone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    with local_runner.stopped_with_this_process(child):
        child.wait()
    assert child.returncode == 0


# a stand-in for ``trebol run``: it starts the DAG run child in a session of its own, as
# run_dag does; the child watches it (stop_with_parent), starts a process of its own and waits
PARENT = ("import pathlib, subprocess, sys, time; "
          "child = subprocess.Popen([sys.executable, '-c', sys.argv[2], sys.argv[1]], "
          "start_new_session=True); "
          "pathlib.Path(sys.argv[1] + '.child').write_text(str(child.pid)); time.sleep(120)")
WATCHING_CHILD = ("import os, pathlib, subprocess, sys, time; "
                  "from trebol.airflow.local_runner import stop_with_parent; "
                  "stop_with_parent(os.getppid(), interval=0.1); "
                  "grandchild = subprocess.Popen(['sleep', '120']); "
                  "pathlib.Path(sys.argv[1]).write_text(str(grandchild.pid)); time.sleep(120)")


def test_a_parent_killed_with_sigkill_takes_the_child_and_its_processes_with_it(
        tmp_path: Path) -> None:
    """A ``trebol run`` killed with SIGKILL (it cannot stop its child) once left the child
    running the DAG without the run lock; the next run of the date failed beside it."""
    pid_file = tmp_path / "grandchild.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file), WATCHING_CHILD])
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    child, grandchild = int(Path(f"{pid_file}.child").read_text()), int(pid_file.read_text())
    assert not _gone(child) and not _gone(grandchild)
    parent.kill()
    parent.wait()
    for _ in range(100):
        if _gone(child) and _gone(grandchild):
            break
        time.sleep(0.1)
    assert _gone(child), "the DAG run child stops with its parent"
    assert _gone(grandchild), "and so do its own processes"
