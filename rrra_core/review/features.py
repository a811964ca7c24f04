"""The review queue's candidates frame and the features a learnt order reads.

One row per labelled negative of a run's ``predictions.parquet`` (query, document,
retriever score and rank, the adapter's readings). Around those the module adds
what the adapter does not see:

- the query's positive score and the relative margin ``score / s_pos`` (the
  quantity the relative-margin filter thresholds);
- lexical evidence: BM25 of the (query, document) pair and its rank in the query,
  query-term coverage (plain and IDF-weighted), the IDF of the rarest query term
  the document holds, and the TF-IDF cosine between the candidate and the query's
  labelled positives. Real false negatives contain the answer, which the positive
  contains too, so lexical closeness to the positive is evidence the dense score
  blurs. Document *text* only goes into that cosine, never the title or the id:
  on SQuAD the same title means the same article, which is how that dataset's
  truth is built, and a feature that reads it would measure the benchmark, not
  the queue;
- per-query feedback from the verdicts so far (confirmed false negatives and
  rejections in the same query): false negatives cluster by query.

The static features are computed once per run and cached beside its predictions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "STATIC_FEATURES",
    "FEEDBACK_FEATURES",
    "LexicalConfig",
    "LexicalIndex",
    "candidates_frame",
    "lexical_features",
    "load_or_build_features",
    "feedback_features",
]

# Columns a learnt order may read; the feedback ones change with every verdict.
STATIC_FEATURES: tuple[str, ...] = (
    "score",
    "rank",
    "margin",
    "s_pos",
    "p_fn_given_neg",
    "p_rel",
    "bm25",
    "bm25_rank",
    "q_coverage",
    "q_idf_coverage",
    "rare_idf",
    "pos_sim",
)
FEEDBACK_FEATURES: tuple[str, ...] = ("q_fn", "q_rej")
_TOKEN = re.compile(r"[a-z0-9]+")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LexicalConfig:
    """How the lexical features are computed (part of the cache key)."""

    bm25_k1: float = 1.5  # the project's BM25 defaults (rrra_core.retrieval.bm25)
    bm25_b: float = 0.75
    min_token_length: int = 2  # drops "a", "s", stray digits


def candidates_frame(
    predictions: pd.DataFrame, qrels: Mapping[str, Mapping[str, int]], truth: Mapping[str, Iterable[str]] | None = None
) -> pd.DataFrame:
    """The labelled negatives of a predictions frame, with ``s_pos``, ``margin`` and (if given) ``truth``.

    ``s_pos`` is the query's lowest-scoring labelled positive among its candidates
    (as the benchmark's margin heuristic reads it); a query whose positives all
    fall outside the top-K takes its lowest candidate score instead.
    """
    df = predictions.copy()
    df["query_id"] = df["query_id"].astype(str)
    df["doc_id"] = df["doc_id"].astype(str)
    pos = df[df["label"] == 1].groupby("query_id")["score"].min()
    low = df.groupby("query_id")["score"].min()
    neg = df[df["label"] == 0].reset_index(drop=True)
    neg["s_pos"] = neg["query_id"].map(pos).fillna(neg["query_id"].map(low)).astype(float)
    neg["margin"] = neg["score"] / np.where(np.abs(neg["s_pos"]) > 1e-9, neg["s_pos"], 1e-9)
    neg["positives"] = neg["query_id"].map(lambda q: sorted(d for d, r in qrels.get(q, {}).items() if r > 0))
    if truth is not None:
        sets = {q: set(v) for q, v in truth.items()}
        neg["truth"] = [d in sets.get(q, ()) for q, d in zip(neg["query_id"], neg["doc_id"], strict=True)]
    return neg


def _tokens(text: str, stop: frozenset[str], min_len: int) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if len(t) >= min_len and t not in stop]


class LexicalIndex:
    """The corpus side of :func:`lexical_features`, built once: BM25 over title + text, TF-IDF over the text.

    A build that scores its candidates in chunks of queries (``rrra_core.workflows.scale_build``) builds
    this once and calls :meth:`features` per chunk; the rows come out as one call on every row gives,
    since each feature reads one query's rows and the corpus.
    """

    def __init__(self, corpus: Mapping[str, tuple[str, str]], cfg: LexicalConfig | None = None) -> None:
        import bm25s
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

        self.cfg = cfg = cfg or LexicalConfig()
        self.stop = frozenset(ENGLISH_STOP_WORDS)
        self.doc_ids = list(corpus)
        self.row = {d: i for i, d in enumerate(self.doc_ids)}
        self.bm25 = bm25s.BM25(k1=cfg.bm25_k1, b=cfg.bm25_b)
        self.bm25.index(
            bm25s.tokenize([f"{t} {x}".strip() for t, x in corpus.values()], stopwords="en", show_progress=False),
            show_progress=False,
        )
        vec = TfidfVectorizer(
            tokenizer=lambda s: _tokens(s, self.stop, cfg.min_token_length),
            lowercase=False,
            token_pattern=None,
            sublinear_tf=True,
        )
        self.mat = vec.fit_transform([corpus[d][1] for d in self.doc_ids])  # (n_docs, vocab), rows L2-normalised
        self.idf = dict(zip(vec.get_feature_names_out(), vec.idf_, strict=True))
        # A document holds a term exactly when its TF-IDF row has it (sublinear tf is >= 1 for a present term):
        # the matrix answers "does it hold" without a set of terms per document (gigabytes at 300k documents).
        self.column = vec.vocabulary_

    def _bm25_pairs(self, frame: pd.DataFrame, queries: Mapping[str, str]) -> np.ndarray:
        """BM25 of every (query, document) row, over the whole corpus (0 where no term matches)."""
        import bm25s

        out = np.zeros(len(frame))
        docs = frame["doc_id"].to_numpy()  # once: converting it per query made the build quadratic in the run's size
        for q, idx in frame.groupby("query_id", sort=False).indices.items():
            toks = bm25s.tokenize([queries.get(q, "")], stopwords="en", show_progress=False, return_ids=False)[0]
            if not toks:
                continue
            scores = self.bm25.get_scores(toks)
            out[idx] = [scores[self.row[d]] if d in self.row else 0.0 for d in docs[idx]]
        return out

    def features(self, frame: pd.DataFrame, queries: Mapping[str, str]) -> pd.DataFrame:
        """:func:`lexical_features` of ``frame``'s rows (``query_id``, ``doc_id``, ``positives``) on this corpus."""
        cfg, stop, row, idf, mat = self.cfg, self.stop, self.row, self.idf, self.mat
        bm25 = self._bm25_pairs(frame, queries)
        cov, idf_cov, rare, pos_sim = (np.zeros(len(frame)) for _ in range(4))
        docs = frame["doc_id"].to_numpy()
        for q, idx in frame.groupby("query_id", sort=False).indices.items():
            terms = [t for t in dict.fromkeys(_tokens(queries.get(q, ""), stop, cfg.min_token_length)) if t in idf]
            weights = np.array([idf[t] for t in terms])
            cols = np.array([self.column[t] for t in terms], dtype=mat.indices.dtype)
            rows = np.array([row.get(d, -1) for d in docs[idx]])
            for j, r in zip(idx, rows, strict=True):
                if r < 0 or not terms:
                    continue
                have = np.isin(cols, mat.indices[mat.indptr[r] : mat.indptr[r + 1]])
                cov[j] = have.mean()
                idf_cov[j] = weights[have].sum() / weights.sum()
                rare[j] = weights[have].max() if have.any() else 0.0
            positives = [row[d] for d in frame["positives"].iat[idx[0]] if d in row]
            if positives and (rows >= 0).any():
                sims = (self.mat[rows.clip(0)] @ self.mat[positives].T).toarray().max(axis=1)  # (n_cand,)
                pos_sim[idx] = np.where(rows >= 0, sims, 0.0)
        out = pd.DataFrame(
            {"bm25": bm25, "q_coverage": cov, "q_idf_coverage": idf_cov, "rare_idf": rare, "pos_sim": pos_sim}
        )
        out["bm25_rank"] = (
            pd.Series(bm25).groupby(frame["query_id"].to_numpy()).rank(ascending=False, method="first").to_numpy() - 1
        )
        return out


def lexical_features(
    frame: pd.DataFrame,
    corpus: Mapping[str, tuple[str, str]],
    queries: Mapping[str, str],
    cfg: LexicalConfig | None = None,
) -> pd.DataFrame:
    """BM25, query-term coverage, rarest-term IDF and closeness to the positives, one row per candidate.

    ``corpus`` maps a doc id to ``(title, text)``. BM25 reads title + text (as the
    project's BM25 baseline indexes it); the coverage and positive-closeness
    features read the text alone (see the module docstring).
    """
    return LexicalIndex(corpus, cfg).features(frame, queries)


def _cache_key(frame: pd.DataFrame, cfg: LexicalConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    h.update("\n".join(frame["query_id"] + "\t" + frame["doc_id"]).encode())
    return h.hexdigest()[:16]


def load_or_build_features(
    frame: pd.DataFrame,
    corpus: Mapping[str, tuple[str, str]],
    queries: Mapping[str, str],
    cache: str | Path | None = None,
    cfg: LexicalConfig | None = None,
) -> pd.DataFrame:
    """``frame`` with the lexical features joined, read from ``cache`` when it was made for these rows and settings.

    The cache is a parquet file keyed by a hash of the settings and the (query,
    document) rows, so a changed run or setting rebuilds it instead of misreading it,
    and so does a damaged cache (a copy cut short, a full disk): it is only a cache.
    """
    cfg = cfg or LexicalConfig()
    key = _cache_key(frame, cfg)
    path = Path(cache) if cache is not None else None
    lex = None
    if path is not None and path.is_file():
        try:
            cached = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
            log.warning("rebuilding the damaged feature cache %s (%s)", path, type(err).__name__)
            cached = pd.DataFrame()
        if len(cached) == len(frame) and "key" in cached and (cached["key"] == key).all():
            lex = cached.drop(columns=["key"])
    if lex is None:
        lex = lexical_features(frame, corpus, queries, cfg)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            lex.assign(key=key).to_parquet(path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
    out = frame.drop(columns=[c for c in lex.columns if c in frame.columns]).reset_index(drop=True)
    return pd.concat([out, lex.reset_index(drop=True)], axis=1)


def feedback_features(
    frame: pd.DataFrame, verdicts: Mapping[int, bool], codes: np.ndarray | None = None
) -> pd.DataFrame:
    """Per row: confirmed FNs (``q_fn``) and rejections (``q_rej``) among the other reviewed rows of its query.

    Leaving the row itself out makes a reviewed row's features what they would
    have been had it been shown last, so the learner trains on the same quantity
    it scores the unreviewed rows with. ``codes``: each row's query as a number
    (any numbering), if the caller has them (at 10M rows, finding them costs a
    second each refit).
    """
    n = len(frame)
    fn = np.zeros(n)
    rej = np.zeros(n)
    if verdicts:
        idx = np.fromiter(verdicts.keys(), dtype=np.int64)
        val = np.fromiter(verdicts.values(), dtype=bool)
        if codes is None:
            codes = frame["query_id"].astype("category").cat.codes.to_numpy()
        fn_q = np.bincount(codes[idx[val]], minlength=codes.max() + 1)
        rej_q = np.bincount(codes[idx[~val]], minlength=codes.max() + 1)
        fn = fn_q[codes].astype(float)
        rej = rej_q[codes].astype(float)
        fn[idx[val]] -= 1
        rej[idx[~val]] -= 1
    return pd.DataFrame({"q_fn": fn, "q_rej": rej})
