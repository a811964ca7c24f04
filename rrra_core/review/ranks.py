"""Percentile ranks in numpy, equal to pandas' average ranks to the last bit, each column's computed once.

Every arm of the queue is put on the scale of its global percentile rank
(:mod:`~rrra_core.review.bandit`), and the prior ranks the same few columns
again; at 10M candidates pandas' ``rank`` costs seconds a column. Here a rank is
one ``argsort`` and a pass over the tie groups, with the value pandas gives
(a tie group at sorted positions ``s..e-1`` ranks ``s + (e - s + 1) / 2``, a
half-integer, exact in float64), and :class:`RankCache` keeps each column's
ranks, the query codes and the learners' standardised features for the frame,
so the arms, the prior and both adaptive learners share them.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["pct_rank", "group_rank_desc", "RankCache"]

log = logging.getLogger(__name__)
#: Bump when an arm, the prior or the standardisation is computed differently: saved caches are then ignored.
CACHE_FORMAT = 1
#: The entries worth saving: what the queue reads at every refit (the ranks behind them are not needed again),
#: the learners' standardised features (the model's input when it reads no feedback counts) with their means
#: and deviations, and the bandit's cold-start evidence.
_SAVED = ("arm", "prior", "moments", "evidence", "design")


def _tie_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, starts, ends)``: the ascending argsort and each tie group's span in it."""
    order = np.argsort(values)  # ties are averaged, so which of them sorts first does not matter
    s = values[order]
    new = np.empty(len(s), dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.empty_like(starts)
    ends[:-1], ends[-1:] = starts[1:], len(s)
    return order, starts, ends


def _has_nan(values: np.ndarray) -> bool:
    return values.dtype.kind in "fc" and bool(np.isnan(values).any())


def pct_rank(values: np.ndarray) -> np.ndarray:
    """``pd.Series(values).rank(pct=True, method="average")``, bit for bit, in a third of its time."""
    values = np.asarray(values)
    n = len(values)
    if n == 0 or _has_nan(values) or values.dtype == object:  # pandas' own rules for missing values
        return pd.Series(values).rank(pct=True, method="average").to_numpy(dtype=float)
    order, starts, ends = _tie_groups(values)
    avg = starts + (ends - starts + 1) / 2  # (n_groups,) the mean 1-based position of each tie group
    out = np.empty(n)
    out[order] = np.repeat(avg / n, ends - starts)
    return out


def group_rank_desc(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values``' average rank within its group (``codes``), highest first, as pandas' groupby ``rank`` gives it."""
    values = np.asarray(values)
    n = len(values)
    if n == 0 or _has_nan(values) or values.dtype == object:
        return pd.Series(values).groupby(codes).rank(ascending=False, method="average").to_numpy(dtype=float)
    order, starts, ends = _tie_groups(values)
    dense = np.empty(n, dtype=np.int64)
    dense[order] = np.repeat(np.arange(len(starts), dtype=np.int64), ends - starts)
    key = codes.astype(np.int64) * len(starts) + dense  # one integer per (group, value)
    order, starts, ends = _tie_groups(key)
    group = codes[order]
    gnew = np.empty(n, dtype=bool)
    gnew[:1] = True
    np.not_equal(group[1:], group[:-1], out=gnew[1:])
    gstarts = np.flatnonzero(gnew)
    gends = np.empty_like(gstarts)
    gends[:-1], gends[-1:] = gstarts[1:], n
    gend = np.repeat(gends, gends - gstarts)[starts]  # each tie group's group end, in sorted positions
    # descending, the tie group starts after the (gend - end) larger values of its group
    avg = (gend - ends) + (ends - starts + 1) / 2
    out = np.empty(n)
    out[order] = np.repeat(avg, ends - starts)
    return out


class RankCache:
    """One frame's ranks and shared arrays, each computed on first use (the frame must not change meanwhile)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._memo: dict[Hashable, Any] = {}

    def memo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per ``key``."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def get(self, key: Hashable) -> Any:
        """What ``key`` holds (computed or loaded), or ``None``."""
        return self._memo.get(key)

    @property
    def codes(self) -> np.ndarray:
        """Each row's query as a number (rows of one query share one)."""
        return self.memo("codes", lambda: pd.factorize(self.frame["query_id"])[0])

    def pct(self, column: str) -> np.ndarray:
        """The column's global percentile rank (:func:`pct_rank`)."""
        return self.memo(("pct", column), lambda: pct_rank(self.frame[column].to_numpy()))

    def save(self, folder: str | Path, stamp: str) -> None:
        """Write the arms, priors and feature moments to ``folder`` (replacing it whole).

        ``stamp`` says what the frame was made from (its rows and features); :meth:`load` only takes the
        entries back for the same stamp, so a changed run or setting recomputes them.
        """
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        entries = {}
        for i, (key, value) in enumerate(self._memo.items()):
            if isinstance(key, tuple) and key[0] in _SAVED and isinstance(value, np.ndarray):
                np.save(tmp / f"{i}.npy", value)
                entries[repr(key)] = f"{i}.npy"
        index = {"format": CACHE_FORMAT, "stamp": stamp, "rows": len(self.frame), "entries": entries}
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)

    def load(self, folder: str | Path, stamp: str) -> bool:
        """Take up what :meth:`save` wrote for ``stamp``; False (and nothing taken) when there is no such cache."""
        folder = Path(folder)
        try:
            index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
            if (index.get("format"), index.get("stamp"), index.get("rows")) != (CACHE_FORMAT, stamp, len(self.frame)):
                return False
            # memory-mapped: the arms are only read, and a copy of each costs a second at 10M rows
            loaded = {
                ast.literal_eval(k): np.load(folder / f, allow_pickle=False, mmap_mode="r")
                for k, f in index["entries"].items()
            }
        except FileNotFoundError:
            return False
        except (OSError, ValueError, SyntaxError, KeyError, TypeError, AttributeError) as err:
            log.warning("recomputing the damaged arm cache %s (%s)", folder, type(err).__name__)
            return False
        if any(len(v) != len(self.frame) for k, v in loaded.items() if k[0] in ("arm", "prior", "design")):
            log.warning("recomputing the arm cache %s: its rows do not match the frame", folder)
            return False
        self._memo.update(loaded)
        return True

    @property
    def saved(self) -> frozenset[Hashable]:
        """The keys :meth:`save` would write now."""
        return frozenset(k for k in self._memo if isinstance(k, tuple) and k[0] in _SAVED)

    def within(self, column: str) -> np.ndarray:
        """The column's average rank within its query, highest first (:func:`group_rank_desc`)."""
        return self.memo(("within", column), lambda: group_rank_desc(self.codes, self.frame[column].to_numpy()))
