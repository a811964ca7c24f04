"""Training labels for the adapter: one (query, doc) pair per pool entry, with its class.

For each training query (a query with at least one positive, grade > 0, in
``qrels``) the pool is its positives plus its top-``top_k`` retrieved
candidates, plus any synthetic wrong positive and any human-judged document.
Each pair gets a **label** (what the model is told: 1 = labeled positive) and a
**target** class in ``CLASSES = (TP, FN, FP, TN)``.

``scheme = "synthetic"`` (default):

* **Masking** hides a share ``mu`` of each query's positives; they stay in the
  pool (retrieved or not, since they are known false negatives) as FN, and are
  removed from ``visible_qrels``, the qrels the rest of the pipeline trains on.
  The number masked is ``mu * n_pos`` rounded *stochastically* (floor, plus one
  with probability equal to the fraction), so the expected masked share is
  ``mu`` even when queries have one or two positives, where plain rounding would
  mask none (one positive, mu < 0.5) or half. A query with n_pos >= 2 always
  keeps at least one visible positive. A single-positive query is masked (with
  probability mu) only if ``mask_single``; it then has no visible positive and
  drops out of ``visible_qrels``. ``mask_single`` defaults to True because the
  default demo data (SQuAD) has exactly one positive per query: without it the
  adapter would see no false negative at all. Positives a human judged are
  never masked: their class is the human's.
* The remaining positives are TP.
* **Synthetic wrong positives**: with probability ``fp_fraction`` a query gets
  one unlabeled, unjudged document from retriever ranks ``fp_rank_range``
  (0-based, end exclusive) presented as labeled positive, class FP. It is an
  adapter-only example and is *not* added to ``visible_qrels``. Ranks come
  from ``deep_candidates`` when given (it must reach rank 300 for the default
  range), else from ``candidates``. When that list is too short for the range,
  the document is drawn from its deepest half instead (ranks n//2 .. n-1), which
  may overlap the top-K pool; the pair is then FP instead of TN.
* Every other candidate is TN (noisy on purpose: real false negatives hide there).

``scheme = "outcome"``: no masking, no synthetic FP; the class is
qrels label x (the frozen retriever ranks the doc within its top ``k_pred``):
TP = positive ranked in, FN = positive ranked out (or not retrieved),
FP = negative ranked in, TN = the rest. In the class table the retriever's
verdict then plays the label (the row: TP/FP vs FN/TN) and the qrels play the
truth, so ``AdapterPairs.labels`` holds "ranked in" for this scheme and the
conditional readings mean, e.g., P(FN | ranked out) = P(labeled positive | the
retriever missed it). ``visible_qrels`` equals the positives of ``qrels``.

**Human verdicts** enter only through :func:`apply_human_judgments`, in both
schemes, and override whatever the scheme said: the class is the pair's label
(row) x the human verdict (truth). They come as one mapping
``{(query_id, doc_id): relevant}`` (``LabelCorrections.verdicts``, see
:mod:`rrra_core.data.corrections`): one decided verdict per pair. In the
synthetic scheme that reads: a document confirmed relevant is FN while it is labeled negative and TP once the
correction has been merged into the qrels the caller passes; a document
confirmed irrelevant is TN, or FP if it is labeled positive. In the outcome
scheme the verdict replaces the qrels as truth. Verdicts on queries outside
this pool (e.g. test queries) are ignored, so they never leak into training.

Randomness is per query (:func:`rrra_core.negatives.mining.query_rng`): a query's pairs
depend only on the seed, its own qrels and candidates, never on dict order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rrra_core.adapter.model import CLASSES, FN, FP, TN, TP
from rrra_core.data.corrections import Verdicts
from rrra_core.negatives.mining import query_rng, sort_candidates
from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError

__all__ = [
    "SCHEMES",
    "SOURCES",
    "LabelConfig",
    "AdapterPairs",
    "build_adapter_pairs",
    "apply_human_judgments",
    "class_counts",
]

SCHEMES = ("synthetic", "outcome")
SOURCES = ("qrels", "masked", "synthetic_fp", "human", "unlabeled")

Candidates = Mapping[str, Sequence[tuple[str, float]]]


@dataclass
class LabelConfig:
    """How adapter training labels are made (see the module docstring)."""

    scheme: str = opt(
        "synthetic",
        "'synthetic' (masked positives, planted wrong positives) or 'outcome' (label x retriever top-k_pred)",
        choices=SCHEMES,
    )
    mu: float = opt(0.3, "share of each query's positives hidden as synthetic false negatives")
    mask_single: bool = opt(
        True,
        "also mask (with probability mu) the only positive of single-positive queries; they then leave visible_qrels",
    )
    fp_fraction: float = opt(0.2, "share of queries that get one synthetic wrong positive")
    fp_rank_range: tuple[int, int] = opt(
        (100, 300), "retriever ranks [start, end) (0-based) the synthetic wrong positive is drawn from"
    )
    k_pred: int = opt(10, "outcome scheme: a pair counts as 'ranked in' within this many top ranks")
    top_k: int = opt(100, "candidate pool depth K: retrieved documents per query")
    seed: int = opt(0, "random seed for masking and synthetic wrong positives")

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(f"unknown label scheme {self.scheme!r}; expected one of {', '.join(SCHEMES)}")
        if not 0.0 <= self.mu <= 1.0:
            raise ConfigError(f"mu must be in [0, 1], got {self.mu}")
        if not 0.0 <= self.fp_fraction <= 1.0:
            raise ConfigError(f"fp_fraction must be in [0, 1], got {self.fp_fraction}")
        lo, hi = self.fp_rank_range
        if not 0 <= lo < hi:
            raise ConfigError(f"fp_rank_range must be [start, end) with 0 <= start < end, got {self.fp_rank_range}")
        if self.k_pred < 1 or self.top_k < 1:
            raise ConfigError(f"k_pred and top_k must be positive, got {self.k_pred} and {self.top_k}")


@dataclass
class AdapterPairs:
    """Parallel arrays, one row per (query, doc) pair of the adapter's training pool."""

    query_ids: list[str]
    doc_ids: list[str]
    labels: np.ndarray  # (N,) int8: the class table's row, 1 = labeled positive (outcome scheme: ranked in)
    targets: np.ndarray  # (N,) int64: index into CLASSES
    sources: list[str]  # (N,) one of SOURCES
    ranks: np.ndarray  # (N,) int64: 0-based retriever rank, -1 = not retrieved
    visible_qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # qrels after masking

    def __len__(self) -> int:
        return len(self.doc_ids)

    def select(self, index: np.ndarray | Sequence[int]) -> AdapterPairs:
        """The pairs at ``index`` (positions or a boolean mask); visible_qrels is shared."""
        idx = np.arange(len(self))[np.asarray(index)] if len(self) else np.zeros(0, dtype=np.int64)
        return AdapterPairs(
            [self.query_ids[i] for i in idx],
            [self.doc_ids[i] for i in idx],
            self.labels[idx],
            self.targets[idx],
            [self.sources[i] for i in idx],
            self.ranks[idx],
            self.visible_qrels,
        )


def class_counts(pairs: AdapterPairs) -> np.ndarray:
    """Pairs per class, (4,) int64 in ``CLASSES`` order."""
    return np.bincount(np.asarray(pairs.targets, dtype=np.int64), minlength=len(CLASSES))


def _target(label: int, relevant: bool) -> int:
    if relevant:
        return TP if label else FN
    return FP if label else TN


def apply_human_judgments(pairs: AdapterPairs, verdicts: Verdicts) -> AdapterPairs:
    """A copy of ``pairs`` with human verdicts (``{(query_id, doc_id): relevant}``) as gold targets.

    The one door for human labels. The class is (the pair's label) x (the
    verdict). A pair keeps its label, except a synthetic wrong positive, whose
    fake label reverts to the qrels. Judged docs missing from the pool are
    appended (rank -1) with label "in ``visible_qrels``"; verdicts on queries
    not in the pool are ignored.
    """
    query_ids, doc_ids = list(pairs.query_ids), list(pairs.doc_ids)
    labels, targets, ranks = list(pairs.labels), list(pairs.targets), list(pairs.ranks)
    sources = list(pairs.sources)
    where = {(q, d): i for i, (q, d) in enumerate(zip(query_ids, doc_ids))}
    known = set(query_ids)
    for (q, d), relevant in sorted(verdicts.items()):
        if q not in known:
            continue
        i = where.get((q, d))
        if i is None:
            label = int(d in pairs.visible_qrels.get(q, {}))
            where[(q, d)] = len(doc_ids)
            query_ids.append(q)
            doc_ids.append(d)
            labels.append(label)
            targets.append(_target(label, relevant))
            sources.append("human")
            ranks.append(-1)
        else:
            label = int(d in pairs.visible_qrels.get(q, {})) if sources[i] == "synthetic_fp" else int(labels[i])
            labels[i], targets[i], sources[i] = label, _target(label, relevant), "human"
    return AdapterPairs(
        query_ids,
        doc_ids,
        np.asarray(labels, dtype=np.int8),
        np.asarray(targets, dtype=np.int64),
        sources,
        np.asarray(ranks, dtype=np.int64),
        pairs.visible_qrels,
    )


def _mask_count(n_pos: int, n_maskable: int, cfg: LabelConfig, rng: np.random.Generator) -> int:
    x = cfg.mu * n_pos
    n = math.floor(x) + int(rng.random() < x - math.floor(x))  # stochastic rounding
    cap = n_pos - 1 if n_pos >= 2 else int(cfg.mask_single)
    return max(0, min(n, cap, n_maskable))


def _pick_wrong_positive(
    ranked: list[tuple[str, float]], eligible: Callable[[str], bool], cfg: LabelConfig, rng: np.random.Generator
) -> str | None:
    lo, hi = cfg.fp_rank_range
    window = [d for d, _ in ranked[lo:hi] if eligible(d)]
    if not window and len(ranked) < hi:
        # The list is too short for the range: fall back to its deepest half.
        window = [d for d, _ in ranked[len(ranked) // 2 :] if eligible(d)]
    return window[int(rng.integers(len(window)))] if window else None


def _rankings(
    q: str, candidates: Candidates, deep_candidates: Candidates | None
) -> tuple[list[tuple[str, float]], list[tuple[str, float]], dict[str, int]]:
    """(the query's candidates, its deep list, each doc's 0-based rank), ties ordered as in mining."""
    ranked = sort_candidates(list(candidates.get(q, ())))
    deep = sort_candidates(list(deep_candidates[q])) if deep_candidates is not None and q in deep_candidates else ranked
    rank_of = {d: i for i, (d, _) in enumerate(deep)}
    rank_of.update({d: i for i, (d, _) in enumerate(ranked)})
    return ranked, deep, rank_of


def _synthetic_noise(
    q: str,
    pos: Mapping[str, int],
    deep: list[tuple[str, float]],
    judged: Mapping[tuple[str, str], bool],
    config: LabelConfig,
    rng: np.random.Generator,
) -> tuple[set[str], str | None]:
    """The synthetic scheme's (masked positives, wrong positive) for one query; judged pairs keep their class."""
    maskable = sorted(d for d in pos if (q, d) not in judged)
    n_mask = _mask_count(len(pos), len(maskable), config, rng)
    masked = {maskable[i] for i in rng.choice(len(maskable), size=n_mask, replace=False)} if n_mask else set()
    wrong_positive = None
    if rng.random() < config.fp_fraction:
        wrong_positive = _pick_wrong_positive(deep, lambda d: d not in pos and (q, d) not in judged, config, rng)
    return masked, wrong_positive


def _pool_docs(
    pos: Mapping[str, int],
    ranked: list[tuple[str, float]],
    rank_of: Mapping[str, int],
    wrong_positive: str | None,
    judged_docs: Sequence[str],
    config: LabelConfig,
) -> list[str]:
    """The query's pool: its top-K, then its positives outside it, the wrong positive and the judged docs."""
    pool = [d for d, _ in ranked[: config.top_k]]
    seen = set(pool)
    extra = sorted(set(pos) - seen, key=lambda d: (rank_of.get(d, math.inf), d))
    extra += [wrong_positive] if wrong_positive is not None and wrong_positive not in seen else []
    extra += sorted(d for d in judged_docs if d not in seen and d not in pos and d != wrong_positive)
    return pool + extra


def _classify(
    d: str,
    pos: Mapping[str, int],
    visible: Mapping[str, int],
    masked: set[str],
    wrong_positive: str | None,
    predicted: set[str],
    scheme: str,
) -> tuple[int, int, str]:
    """(label, target class, source) of one pool document under ``scheme``."""
    if scheme == "outcome":
        # The retriever's verdict takes the label's place, the qrels the truth's.
        label = int(d in predicted)
        return label, _target(label, d in pos), "qrels" if d in pos else "unlabeled"
    if d in visible:
        return 1, TP, "qrels"
    if d in masked:
        return 0, FN, "masked"
    if d == wrong_positive:
        return 1, FP, "synthetic_fp"
    return 0, TN, "unlabeled"


def build_adapter_pairs(
    qrels: Mapping[str, Mapping[str, int]],
    candidates: Candidates,
    config: LabelConfig,
    verdicts: Verdicts | None = None,
    deep_candidates: Candidates | None = None,
) -> AdapterPairs:
    """The adapter's training pool and classes for every query with a positive in ``qrels``.

    ``candidates[qid]``: the frozen retriever's ``(doc_id, score)`` list (best
    first; ties are ordered by doc id, as in mining), cut here to ``top_k``.
    ``deep_candidates``: a deeper list for drawing synthetic wrong positives.
    ``verdicts``: human verdicts (see :func:`apply_human_judgments`).
    """
    judged = {(str(q), str(d)): bool(r) for (q, d), r in (verdicts or {}).items()}
    judged_docs: dict[str, list[str]] = {}
    for q, d in judged:
        judged_docs.setdefault(q, []).append(d)

    rows: list[tuple[str, str, int, int, str, int]] = []  # (query, doc, label, target, source, rank)
    visible_qrels: dict[str, dict[str, int]] = {}
    for q in sorted(qrels):
        pos = {d: int(g) for d, g in qrels[q].items() if g > 0}
        if not pos:
            continue
        rng = query_rng(config.seed, q)
        ranked, deep, rank_of = _rankings(q, candidates, deep_candidates)
        masked, wrong_positive = (
            _synthetic_noise(q, pos, deep, judged, config, rng) if config.scheme == "synthetic" else (set(), None)
        )
        visible = {d: g for d, g in pos.items() if d not in masked}
        if visible:
            visible_qrels[q] = visible
        predicted = {d for d, _ in ranked[: config.k_pred]}  # outcome scheme: what the frozen retriever ranks in
        for d in _pool_docs(pos, ranked, rank_of, wrong_positive, judged_docs.get(q, ()), config):
            label, target, source = _classify(d, pos, visible, masked, wrong_positive, predicted, config.scheme)
            rows.append((q, d, label, target, source, rank_of.get(d, -1)))

    pairs = AdapterPairs(
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.asarray([r[2] for r in rows], dtype=np.int8),
        np.asarray([r[3] for r in rows], dtype=np.int64),
        [r[4] for r in rows],
        np.asarray([r[5] for r in rows], dtype=np.int64),
        visible_qrels,
    )
    return apply_human_judgments(pairs, judged) if judged else pairs
