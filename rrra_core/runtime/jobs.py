"""Background jobs: a command-line driver run as its own process and followed through files.

The app never trains inline. :func:`start_job` launches ``python -m
rrra_core.runtime.jobs <job dir> -- <command>`` in a new session, so the job outlives
the page, a browser refresh and an app restart. That small runner starts the
command with its output in ``output.log`` and writes ``exit.json`` when the
command ends. A job's state is read from files alone:

- ``running``: no ``exit.json`` and the runner's process is alive;
- ``done`` / ``failed``: ``exit.json`` with the return code;
- ``cancelled``: :func:`cancel_job` stopped it (``exit.json`` says so);
- ``lost``: no ``exit.json`` and no process (killed, or the machine rebooted);
  the drivers resume from their checkpoints, so such a job can be restarted.

Job folders live in ``<home>/.rrra/jobs/<job id>/``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrra_core.runtime.errors import UserError
from rrra_core.runtime.paths import REPO_ROOT, home_dir
from rrra_core.runtime.runs import write_json_atomic

__all__ = [
    "JobState",
    "jobs_dir",
    "check_name",
    "start_job",
    "job_state",
    "list_jobs",
    "cancel_job",
    "log_tail",
    "ACTIVE",
]

ACTIVE = ("starting", "running")
#: Where ``python -m rrra_core.runtime.jobs`` and the scripts resolve from.


@dataclass
class JobState:
    """What is known about one job, read from its folder."""

    id: str
    kind: str
    command: list[str]
    status: str  # starting | running | done | failed | cancelled | lost
    pid: int | None = None
    returncode: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def jobs_dir() -> Path:
    return home_dir() / ".rrra" / "jobs"


def _check_id(job_id: str) -> str:
    if not job_id or any(c in job_id for c in "/\\\0") or job_id.startswith("."):
        raise UserError(f"invalid job id {job_id!r}")
    return job_id


#: What a name that becomes a folder and a command-line value may hold.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_NAME = 100


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is safe as a folder and as a driver's flag value; else ``UserError`` with the one-line reason.

    A job id or run name becomes ``--run-id <name>`` on a driver's command
    line and a folder under the home: ``-h`` would be read as an option (the
    driver prints its help or refuses), ``../x`` would leave the folder, and a
    space or a control character would break the lines that name it.
    """
    if not name:
        raise UserError(f"the {what} is empty")
    if name.startswith("-"):
        raise UserError(f"the {what} {name!r} starts with '-': a command line would read it as an option")
    if len(name) > MAX_NAME:
        raise UserError(f"the {what} is {len(name)} characters long; at most {MAX_NAME}")
    if not _SAFE_NAME.fullmatch(name):
        raise UserError(
            f"the {what} {name!r} may hold only letters, digits, '.', '_' and '-', and start with a letter or digit"
        )
    return name


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child of this process stays a zombie until reaped; reap it so
    # it reads as dead (the app is the runner's parent when it launched it).
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def job_state(job_id: str) -> JobState | None:
    """The job's state, or ``None`` if there is no such job."""
    folder = jobs_dir() / _check_id(job_id)
    info = _read(folder / "job.json")
    if info is None:
        return None
    state = JobState(
        id=job_id,
        kind=info.get("kind", ""),
        command=list(info.get("command", [])),
        status="starting",
        pid=info.get("pid"),
        started_at=info.get("started_at"),
        meta=info.get("meta") or {},
    )
    exit_info = _read(folder / "exit.json")
    if exit_info is not None:
        state.returncode = exit_info.get("returncode")
        state.ended_at = exit_info.get("ended_at")
        if exit_info.get("cancelled"):
            state.status = "cancelled"
        else:
            state.status = "done" if state.returncode == 0 else "failed"
        if state.status == "failed":
            state.error = _last_error(folder / "output.log")
        return state
    if state.pid is None:
        # job.json is written before the runner starts; a pid comes a moment later.
        state.status = "starting" if time.time() - (state.started_at or 0) < 30 else "lost"
        return state
    state.status = "running" if _alive(state.pid) else "lost"
    return state


def _last_error(log: Path) -> str | None:
    """The driver's one-line ``error:`` message, else the log's last line."""
    lines = [ln for ln in log_tail_path(log, 50).splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("error:") or "Error" in line.split(":")[0]:
            return line.strip()
    return lines[-1].strip() if lines else None


def log_tail_path(log: Path, n: int) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-n:])


def log_tail(job_id: str, n: int = 20) -> str:
    """The last ``n`` lines of the job's output."""
    return log_tail_path(jobs_dir() / _check_id(job_id) / "output.log", n)


def start_job(
    job_id: str,
    command: list[str],
    *,
    kind: str = "",
    meta: dict[str, Any] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> JobState:
    """Start ``command`` in the background as job ``job_id``; returns its state.

    A job already running under that id is returned as is (two browser tabs
    pressing the same button start one process). A finished job's folder is
    replaced, so a failed or lost job can be started again. An id a command
    line would read as an option (``-h``) is refused (:func:`check_name`).
    """
    if job_id.startswith("-"):
        check_name(job_id, "job id")
    folder = jobs_dir() / _check_id(job_id)
    current = job_state(job_id)
    if current is not None and current.active:
        return current
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        # Another caller is starting it right now (or crashed mid-start long ago).
        if time.time() - lock.stat().st_mtime < 30:
            state = job_state(job_id)
            if state is not None:
                return state
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    try:
        for name in ("exit.json", "output.log"):
            (folder / name).unlink(missing_ok=True)
        info = {
            "kind": kind,
            "command": [str(c) for c in command],
            "started_at": time.time(),
            "pid": None,
            "meta": meta or {},
        }
        write_json_atomic(folder / "job.json", info)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rrra_core.runtime.jobs", str(folder), "--", *info["command"]],
            cwd=cwd if cwd is not None else REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        info["pid"] = proc.pid
        write_json_atomic(folder / "job.json", info)
    finally:
        lock.unlink(missing_ok=True)
    return job_state(job_id)  # type: ignore[return-value]


def cancel_job(job_id: str, timeout: float = 10.0, *, by: str | None = None) -> JobState:
    """Stop a running job (its whole process group) and mark it cancelled (``by``: who asked, when known)."""
    state = job_state(job_id)
    if state is None:
        raise UserError(f"no job {job_id!r}")
    if not state.active or state.pid is None:
        return state
    folder = jobs_dir() / job_id
    who = {"cancelled_by": by} if by else {}
    write_json_atomic(folder / "cancel.json", {"requested_at": time.time(), **who})
    try:
        os.killpg(state.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + timeout
    while time.time() < deadline and _alive(state.pid):
        time.sleep(0.1)
    if _alive(state.pid):
        try:
            os.killpg(state.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if not (folder / "exit.json").exists():
        write_json_atomic(folder / "exit.json", {"returncode": None, "cancelled": True, "ended_at": time.time(), **who})
    return job_state(job_id)  # type: ignore[return-value]


def list_jobs(kind: str | None = None) -> list[JobState]:
    """Every job (newest first), optionally of one kind."""
    root = jobs_dir()
    if not root.is_dir():
        return []
    states = [s for p in root.iterdir() if p.is_dir() and (s := job_state(p.name)) is not None]
    states = [s for s in states if kind is None or s.kind == kind]
    return sorted(states, key=lambda s: s.started_at or 0.0, reverse=True)


def _runner(folder: Path, command: list[str]) -> int:
    """Run ``command`` with its output in ``output.log``; record how it ended in ``exit.json``."""
    cancelled = {"flag": False}
    with open(folder / "output.log", "ab", buffering=0) as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def on_term(signum: int, _frame: Any) -> None:
            cancelled["flag"] = True
            child.send_signal(signum)

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        rc = child.wait()
    cancel = _read(folder / "cancel.json")
    cancelled["flag"] = cancelled["flag"] or cancel is not None
    # Who asked for the cancel (cancel_job's ``by``) stays with how the job ended.
    who = {"cancelled_by": cancel["cancelled_by"]} if cancel and cancel.get("cancelled_by") else {}
    write_json_atomic(
        folder / "exit.json", {"returncode": rc, "cancelled": cancelled["flag"], "ended_at": time.time(), **who}
    )
    return rc


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m rrra_core.runtime.jobs <job dir> -- <command...>", file=sys.stderr)
        sys.exit(2)
    sys.exit(_runner(Path(args[0]), args[2:]))
