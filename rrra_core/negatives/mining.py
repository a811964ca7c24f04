"""Hard-negative mining from a retrieval run (top-k, uniform, SimANS, margin filter).

Pipeline per query, in this order:

1. keep the first ``top_k`` candidates (by score, ties by doc id);
2. drop the query's positives (qrels grade > 0);
3. keep the rank window ``[rank_start, rank_end)`` of what is left;
4. optional margin filter: drop negatives with ``s_i > (1 - margin) * s_pos``,
   as ``relative_margin`` in sentence-transformers' ``mine_hard_negatives``;
5. pick ``n_neg`` with the sampler: ``topk`` (the first ones), ``uniform``, or
   ``simans`` (``p_i ∝ exp(-a (s_i - s_pos - b)^2)``, SimANS).

``s_pos``, the positive score, is per query. With several positives we use the
*lowest* positive score: the margin filter then drops anything scoring near any
positive (the conservative choice against false negatives), and SimANS centres
on the weakest positive, the one the model still has to pull up. Where scores
come from, in order of preference:

* ``positive_scores[qid]`` given by the caller (e.g. the dot product of the
  query and each positive's embedding; best, because it always exists);
* the scores of positives that appear among the query's candidates;
* otherwise the positives ranked below every candidate, so the lowest
  candidate score is an upper bound on ``s_pos``; we use that bound.

Randomness is per query, from ``seed`` and a CRC32 of the query id, so a
query's negatives do not depend on dict order or on the other queries.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from rrra_core.runtime.errors import ConfigError

if TYPE_CHECKING:
    from rrra_core.data.training_files import TrainingExample

__all__ = [
    "SAMPLERS",
    "MiningConfig",
    "simans_weights",
    "margin_keep_mask",
    "sample_without_replacement",
    "query_rng",
    "positive_score",
    "sort_candidates",
    "mine_hard_negatives",
    "mined_examples",
]

SAMPLERS = ("topk", "simans", "uniform")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


@dataclass(frozen=True)
class MiningConfig:
    """Settings for :func:`mine_hard_negatives`; invalid values raise ConfigError."""

    top_k: int = field(
        default=100, metadata={"help": "Candidates retrieved per query (the list is cut to this length)."}
    )
    rank_start: int = field(
        default=0,
        metadata={"help": "First rank (0-based) of the window, counted after removing positives."},
    )
    rank_end: int | None = field(
        default=None,
        metadata={"help": "End of the rank window (exclusive, after removing positives); empty = up to top_k."},
    )
    relative_margin: float | None = field(
        default=None,
        metadata={
            "help": "Drop negatives scoring above (1 - margin) x the lowest positive score "
            "(0.05 = within 5% of the positive); empty = no filter."
        },
    )
    sampler: str = field(
        default="topk",
        metadata={"help": "How to pick negatives from the window: topk (hardest first), uniform, or simans."},
    )
    n_neg: int | None = field(default=8, metadata={"help": "Negatives kept per query; empty = all in the window."})
    simans_a: float = field(
        default=0.5,
        metadata={"help": "SimANS sharpness a in exp(-a (s - s_pos - b)^2); 0 = uniform."},
    )
    simans_b: float = field(
        default=0.0,
        metadata={"help": "SimANS offset b: sampling peaks at negatives scoring s_pos + b."},
    )
    seed: int = field(default=0, metadata={"help": "Random seed for the uniform and simans samplers."})

    def __post_init__(self) -> None:
        if not _is_int(self.top_k) or self.top_k < 1:
            raise ConfigError(f"top_k must be a positive integer, got {self.top_k!r}")
        if not _is_int(self.rank_start) or self.rank_start < 0:
            raise ConfigError(f"rank_start must be a non-negative integer, got {self.rank_start!r}")
        if self.rank_end is not None:
            if not _is_int(self.rank_end):
                raise ConfigError(f"rank_end must be an integer or empty, got {self.rank_end!r}")
            if self.rank_end <= self.rank_start:
                raise ConfigError(f"rank_end ({self.rank_end}) must be greater than rank_start ({self.rank_start})")
        if self.relative_margin is not None:
            if not _is_real(self.relative_margin) or not 0.0 <= self.relative_margin < 1.0:
                raise ConfigError(f"relative_margin must be in [0, 1), got {self.relative_margin!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; expected one of {', '.join(SAMPLERS)}")
        if self.n_neg is not None and (not _is_int(self.n_neg) or self.n_neg < 1):
            raise ConfigError(f"n_neg must be a positive integer or empty, got {self.n_neg!r}")
        if not _is_real(self.simans_a) or self.simans_a < 0:
            raise ConfigError(f"simans_a must be a non-negative number, got {self.simans_a!r}")
        if not _is_real(self.simans_b):
            raise ConfigError(f"simans_b must be a finite number, got {self.simans_b!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text, for forms and ``--help``."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


# ----------------------------------------------------------------- pure maths
def simans_weights(neg_scores: np.ndarray, pos_score: float, a: float, b: float) -> np.ndarray:
    """SimANS sampling probabilities ``p_i ∝ exp(-a (s_i - s_pos - b)^2)``, summing to 1.

    Computed in log space with the maximum subtracted, so large ``a`` or
    distant scores cannot underflow every weight to zero.
    """
    s = np.asarray(neg_scores, dtype=np.float64)
    if s.size == 0:
        return np.zeros(0, dtype=np.float64)
    logits = -float(a) * np.square(s - float(pos_score) - float(b))
    logits -= logits.max()
    w = np.exp(logits)
    return w / w.sum()


def margin_keep_mask(neg_scores: np.ndarray, pos_score: float, margin: float) -> np.ndarray:
    """True for negatives to keep: ``s_i <= (1 - margin) * s_pos``."""
    s = np.asarray(neg_scores, dtype=np.float64)
    return s <= (1.0 - float(margin)) * float(pos_score)


def sample_without_replacement(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` distinct indices with probability proportional to ``weights``.

    Draws are successive (each next pick proportional to the remaining
    weights), as numpy does. If ``n`` is at least the number of non-zero
    weights, all of those indices are returned, in index order.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"weights must be 1-D, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    nonzero = np.flatnonzero(w > 0)
    if n <= 0 or nonzero.size == 0:
        return np.zeros(0, dtype=np.int64)
    if n >= nonzero.size:
        return nonzero.astype(np.int64)
    p = w[nonzero] / w[nonzero].sum()
    picked = rng.choice(nonzero.size, size=n, replace=False, p=p)
    return nonzero[picked].astype(np.int64)


def query_rng(seed: int, query_id: str) -> np.random.Generator:
    """A query's own generator, stable across runs, dict orders and Python hash seeds."""
    return np.random.default_rng([int(seed), zlib.crc32(query_id.encode("utf-8"))])


def positive_score(
    candidates: list[tuple[str, float]],
    positives: set[str],
    explicit: Mapping[str, float] | None = None,
) -> float | None:
    """The query's reference positive score ``s_pos`` (see the module docstring).

    ``candidates`` must already be cut to top-k. Returns None only when there are
    no explicit scores and no candidates at all.
    """
    if explicit:
        given = [float(s) for d, s in explicit.items() if d in positives and math.isfinite(float(s))]
        if given:
            return min(given)
    retrieved = [float(s) for d, s in candidates if d in positives]
    if retrieved:
        return min(retrieved)
    if candidates:
        # Not retrieved: every positive scores at most the lowest candidate.
        return min(float(s) for _, s in candidates)
    return None


# --------------------------------------------------------------------- driver
def sort_candidates(cands: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``(doc_id, score)`` best first, ties by doc id, each doc once (its best score): the order mining uses."""
    seen: set[str] = set()
    unique = []
    # Keep the best score if a doc was listed twice.
    for doc_id, score in sorted(cands, key=lambda item: (-float(item[1]), item[0])):
        if doc_id not in seen:
            seen.add(doc_id)
            unique.append((doc_id, float(score)))
    return unique


def mine_hard_negatives(
    candidates: Mapping[str, list[tuple[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    positive_scores: Mapping[str, Mapping[str, float]] | None,
    config: MiningConfig,
) -> dict[str, list[tuple[str, float]]]:
    """Pick hard negatives per query from its retrieved ``(doc_id, score)`` candidates.

    Returns ``{qid: [(doc_id, retriever_score), ...]}`` best score first, for
    every candidate query with at least one positive (an empty list if nothing
    survives the window and filter). Queries without a positive are skipped.
    Positives never appear among the negatives.
    """
    out: dict[str, list[tuple[str, float]]] = {}
    for qid, cands in candidates.items():
        positives = {d for d, rel in qrels.get(qid, {}).items() if rel > 0}
        if not positives:
            continue
        ranked = sort_candidates(list(cands))[: config.top_k]
        pool = [(d, s) for d, s in ranked if d not in positives]
        pool = pool[config.rank_start : config.rank_end]
        needs_pos = config.relative_margin is not None or config.sampler == "simans"
        s_pos = None
        if needs_pos:
            s_pos = positive_score(ranked, positives, (positive_scores or {}).get(qid))
        if config.relative_margin is not None and pool and s_pos is not None:
            keep = margin_keep_mask(np.array([s for _, s in pool]), s_pos, config.relative_margin)
            pool = [item for item, k in zip(pool, keep) if k]
        n = len(pool) if config.n_neg is None else min(config.n_neg, len(pool))
        if config.sampler == "topk" or n == len(pool):
            chosen = pool[:n]
        else:
            rng = query_rng(config.seed, qid)
            scores = np.array([s for _, s in pool])
            if config.sampler == "uniform":
                weights = np.ones(len(pool))
            else:
                assert s_pos is not None  # pool is non-empty, so ranked was too
                weights = simans_weights(scores, s_pos, config.simans_a, config.simans_b)
            idx = sample_without_replacement(weights, n, rng)
            chosen = [pool[i] for i in idx]
        out[qid] = sorted(chosen, key=lambda item: (-item[1], item[0]))
    return out


def mined_examples(
    mined: Mapping[str, list[tuple[str, float]]],
    queries: Mapping[str, str],
    corpus: Mapping[str, Any],
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
) -> list[TrainingExample]:
    """Mining output as Tevatron-ready training examples, with retriever scores kept.

    ``corpus`` maps ids to :class:`~rrra_core.data.Doc`; a positive the retriever
    did not return gets no score.
    """
    from rrra_core.data.training_files import Passage, TrainingExample

    def passage(d: str, score: float | None) -> Passage:
        return Passage(d, corpus[d].text, corpus[d].title, score)

    return [
        TrainingExample(
            query=queries[q],
            query_id=q,
            positives=tuple(passage(d, run.get(q, {}).get(d)) for d in sorted(qrels[q]) if qrels[q][d] > 0),
            negatives=tuple(passage(d, s) for d, s in negs),
        )
        for q, negs in sorted(mined.items())
    ]
