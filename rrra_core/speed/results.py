"""The results files of the speed benchmarks: ``<out>/speed_<part>.json`` and ``.md``.

A result is the benchmark's own dict headed by what makes it readable later:
the command that made it, when it started, its wall time, the load average
before and after (the machine may be shared), and the machine. The Markdown is
rendered from the JSON alone (:mod:`rrra_core.speed.render`), and hand-written
analysis in ``speed_<part>.notes.md`` is carried in the JSON as ``notes_md`` and
appended on every rendering.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rrra_core.runtime.runs import environment_info, write_json_atomic
from rrra_core.speed.measure import cpu_info, cpu_peak_gflops, load_average

__all__ = ["machine_info", "measure_part", "read_result", "attach_notes", "write_result"]


def machine_info(device: Any) -> dict[str, Any]:
    """The CPU, its nominal peak, torch's thread count, the device and library versions, for a result's header."""
    import torch

    info = cpu_info()
    env = environment_info()
    return {
        "cpu": info["model"],
        "cpu_vendor": info["vendor"],
        "cpu_family_model": [info["family"], info["model_number"]],
        "cpu_flags": info["flags"],
        "cpu_count": info["cores"],
        "nominal_mhz": info["mhz"],
        "peak_gflops_estimate": cpu_peak_gflops(info),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": env["cuda"],
        "versions": {k: env[k] for k in ("python", "torch", "transformers", "faiss")},
        "git_commit": env["git_commit"],
    }


def measure_part(part: str, command: str, device: Any, bench: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``bench`` and head its result with the command, start, wall time, load before and after, and machine."""
    started = dt.datetime.now().isoformat(timespec="seconds")
    load_before = load_average()
    t0 = time.perf_counter()
    body = bench()
    return {
        "command": command,
        "part": part,
        "started": started,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "load": {"before": load_before, "after": load_average()},
        "machine": machine_info(device),
        **body,
    }


def read_result(stem: Path) -> dict[str, Any]:
    """The result saved at ``<stem>.json``."""
    return json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))


def attach_notes(result: dict[str, Any], notes: Path) -> dict[str, Any]:
    """Replace the result's ``notes_md`` with the current text of ``notes`` (dropped when that file is gone)."""
    result.pop("notes_md", None)
    if notes.is_file():
        result["notes_md"] = ["## Notes", "", *notes.read_text(encoding="utf-8").strip().splitlines(), ""]
    return result


def write_result(stem: Path, result: dict[str, Any], markdown: str) -> None:
    """Write ``<stem>.json`` (atomically) and ``<stem>.md``."""
    write_json_atomic(stem.with_suffix(".json"), result)
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(f"wrote {stem.with_suffix('.md')} and .json", file=sys.stderr)
