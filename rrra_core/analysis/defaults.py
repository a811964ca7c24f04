"""One default per knob from several collections' dev tuning: the setting that loses least to each one's best.

A tool's defaults serve collections nobody tuned on, so no one collection's winner should set them. For every
trial setting a method was given, its *dev shortfall* on a collection is the gap to that collection's best dev
score; the default is the setting with the smallest mean shortfall over the collections (every collection's
tuning seed, dev split only: the test split plays no part). Ties keep the earlier setting of the grid, the
pre-tuning default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Shortfall", "dev_shortfalls"]


@dataclass(frozen=True)
class Shortfall:
    """One trial setting of one method: its dev gap to each collection's best, and their mean."""

    settings: dict[str, Any]
    per_collection: dict[str, float]

    @property
    def mean(self) -> float:
        return sum(self.per_collection.values()) / len(self.per_collection)


def dev_shortfalls(
    tunings: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]], metric: str = "nDCG@10"
) -> dict[str, list[Shortfall]]:
    """``{method: [Shortfall, ...]}``, best default first, from ``{collection: part["tuning"]}``.

    Only settings every collection tried are ranked (a collection that ran fewer trials cannot vote on the
    others), so the mean is over the same collections for every row.
    """
    methods = sorted(set.intersection(*(set(t) for t in tunings.values()))) if tunings else []
    out: dict[str, list[Shortfall]] = {}
    for method in methods:
        gaps: dict[str, dict[str, float]] = {}
        order: dict[str, int] = {}
        for collection, tuning in tunings.items():
            trials = tuning[method].values()
            best = max(t["dev"][metric] for t in trials)
            for i, t in enumerate(trials):
                key = json.dumps(t["settings"], sort_keys=True)
                gaps.setdefault(key, {})[collection] = best - t["dev"][metric]
                order.setdefault(key, i)
        rows = [Shortfall(json.loads(k), g) for k, g in gaps.items() if len(g) == len(tunings)]
        out[method] = sorted(rows, key=lambda r: (round(r.mean, 12), order[json.dumps(r.settings, sort_keys=True)]))
    return out
