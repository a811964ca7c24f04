"""Background jobs: start, follow, finish, fail, cancel and a lost process, with real subprocesses."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from rrra_core.runtime import jobs
from rrra_core.runtime.errors import UserError


def _wait_until(pred, timeout: float = 300.0):
    # Generous: these jobs are a few lines of Python, but a loaded 2-core machine can take seconds to start one.
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_job_runs_in_the_background_and_records_its_output_and_exit() -> None:
    state = jobs.start_job("ok", [sys.executable, "-c", "print('hello from the job')"], kind="test", meta={"x": 1})
    assert state.status in ("starting", "running", "done") and state.meta == {"x": 1}
    done = _wait_until(lambda: (s := jobs.job_state("ok")) is not None and not s.active and s)
    assert done.status == "done" and done.returncode == 0
    assert "hello from the job" in jobs.log_tail("ok")
    assert [j.id for j in jobs.list_jobs(kind="test")] == ["ok"]


def test_a_failing_job_reports_its_error_line() -> None:
    jobs.start_job("bad", [sys.executable, "-c", "import sys; print('error: the dataset is missing'); sys.exit(2)"])
    state = _wait_until(lambda: (s := jobs.job_state("bad")) is not None and not s.active and s)
    assert state.status == "failed" and state.returncode == 2 and state.error == "error: the dataset is missing"


def test_starting_a_running_job_again_returns_the_same_process_and_cancel_stops_it() -> None:
    cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
    first = jobs.start_job("slow", cmd)
    _wait_until(lambda: jobs.job_state("slow").status == "running")
    again = jobs.start_job("slow", cmd)
    assert again.pid == first.pid
    cancelled = jobs.cancel_job("slow")
    assert cancelled.status == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(first.pid, 0)


def test_a_killed_runner_reads_as_lost_and_can_be_restarted() -> None:
    state = jobs.start_job("lost", [sys.executable, "-c", "import time; time.sleep(60)"])
    _wait_until(lambda: jobs.job_state("lost").status == "running")
    os.killpg(state.pid, signal.SIGKILL)  # as if the machine went down: no exit.json is written
    assert _wait_until(lambda: jobs.job_state("lost").status == "lost")
    restarted = jobs.start_job("lost", [sys.executable, "-c", "pass"])
    assert restarted.pid != state.pid
    assert _wait_until(lambda: jobs.job_state("lost").status == "done")


def test_bad_job_ids_and_unknown_jobs_are_user_errors() -> None:
    with pytest.raises(UserError, match="invalid job id"):
        jobs.start_job("../escape", ["true"])
    with pytest.raises(UserError, match="no job"):
        jobs.cancel_job("nothing-here")
    assert jobs.job_state("nothing-here") is None


@pytest.mark.parametrize("name", ["-h", "--run-id", "a b", "../x", "", "x" * 101, "bad\nname"])
def test_check_name_refuses_what_a_command_line_or_a_folder_would_misread(name: str) -> None:
    with pytest.raises(UserError, match="name"):
        jobs.check_name(name, "run name")
    assert jobs.check_name("demo-squad-r0102-120000") == "demo-squad-r0102-120000"


def test_a_job_id_a_command_line_would_read_as_an_option_is_refused() -> None:
    with pytest.raises(UserError, match="option"):
        jobs.start_job("-h", [sys.executable, "-c", "pass"])
    assert jobs.list_jobs() == []
