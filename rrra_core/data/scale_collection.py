"""A training collection of any size, made offline from the bundled corpora, with known false negatives.

People train on MS-MARCO-like data (100,000 queries x top-100); this writes a
BEIR folder of that size from the sentences of ``rrra_core/demo_data`` (SQuAD,
SciFact, Cranfield, ADI), so the streaming build and the review benchmark can be
run at that scale without a download. The relevance is defined by construction:

- every query has two **source sentences** (two sentences of one bundled document
  where it has two unused ones, else of two): its text is a run of words from each;
- a document is **relevant** to a query exactly when it holds both of its source
  sentences. The query's **positive** (``qrels``) holds them plus 1-2 filler
  sentences; its **known false negatives** (the truth file) hold them too, either as a
  *near-duplicate* of the positive (one or two edits: a filler replaced or dropped,
  two sentences swapped) or as a *recombination* (the two sentences with new fillers);
- **distractors** fill the corpus: 2-4 fillers, half of them with one source
  sentence of some query (a hard negative: half of what a query asks for).

Source sentences and fillers come from disjoint pools and no two queries share
both sentences, so no other document is relevant to any query: the truth is
complete. Document ids are a random permutation of ``d0..dN-1`` and the corpus is
written in id order, so neither an id nor a position says which document is a
positive or a false negative.

The truth file is in the layout the review benchmark already reads for SQuAD:
``answers/<split>_has_answer.tsv.gz`` (``query-id corpus-id score same_article``,
every row ``1 1``; :func:`~rrra_core.data.beir.load_has_answer`). Everything is
a function of the seed, and each document is made from its own seeded generator,
so the corpus is written as a stream. ``collection.json`` keeps the settings and
counts.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError

__all__ = [
    "ScaleCollectionConfig",
    "SentencePool",
    "CollectionPlan",
    "load_sentence_pool",
    "plan_collection",
    "document_sentences",
    "query_text",
    "write_scale_collection",
    "COLLECTION_FILE",
]

COLLECTION_FILE = "collection.json"
#: Bump when the same settings would make a different collection.
FORMAT = 2  # 2: shorter documents (most fit the encoder's 128 word pieces)
SOURCES = ("squad", "scifact", "cranfield", "adi")
# Sentence boundaries: end punctuation and a space. Abbreviations split too; the length filter drops the scraps.
_SPLIT = re.compile(r"(?<=[.!?])\s+")
_MIN_WORDS, _MAX_WORDS = 6, 60
_MIN_SOURCE_WORDS, _MAX_SOURCE_WORDS = 8, 25
#: Fillers are at most this long, so a document of 3-4 sentences fits a 128-word-piece encoder, as MS MARCO's do.
_MAX_FILLER_WORDS = 22
#: Share of the sentences long enough to be a query's source that become sources (the rest are fillers).
_SOURCE_SHARE = 0.7
_FILLERS = (1, 2)  # fillers beside a positive's two source sentences
_DISTRACTOR_SENTENCES = (2, 4)
_KINDS = ("near_duplicate", "recombination")


@dataclass
class ScaleCollectionConfig:
    """What a scale collection is made of (saved in its ``collection.json``)."""

    docs: int = opt(300_000, "documents in the corpus")
    queries: int = opt(100_000, "training queries (qrels/train.tsv)")
    test_queries: int | None = opt(None, "test queries (qrels/test.tsv); default 1% of --queries, 10 to 1,000")
    fn_share: float = opt(0.3, "share of queries with known false negatives")
    max_fn: int = opt(3, "most known false negatives of one query (each such query gets 1 to this many)")
    seed: int = opt(0, "random seed: the same seed and settings write the same files")
    out: str = opt("", "the folder to write (must not exist, or be empty)")

    def __post_init__(self) -> None:
        if self.docs < 1 or self.queries < 1:
            raise ConfigError(f"--docs and --queries must be at least 1, got {self.docs} and {self.queries}")
        if self.test_queries is not None and self.test_queries < 0:
            raise ConfigError(f"--test-queries must be 0 or more, got {self.test_queries}")
        if not 0.0 <= self.fn_share <= 1.0:
            raise ConfigError(f"--fn-share must be in [0, 1], got {self.fn_share}")
        if self.max_fn < 1:
            raise ConfigError(f"--max-fn must be at least 1, got {self.max_fn}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be 0 or more, got {self.seed}")

    @property
    def n_test(self) -> int:
        """Test queries: as set, else 1% of the training queries, kept within 10 to 1,000."""
        if self.test_queries is not None:
            return self.test_queries
        return min(1000, max(10, self.queries // 100))


@dataclass(frozen=True)
class SentencePool:
    """The bundled corpora's distinct sentences: texts, the document (group) each came from and its title."""

    texts: list[str]
    group: list[int]  # (n_sentences,) the source document of each sentence
    titles: list[str]  # by group
    sources: list[int]  # (n_sentence_sources,) sentence numbers a query may draw its two from
    fillers: list[int]  # sentence numbers the rest of every document is made of
    by_group: dict[int, list[int]]  # source sentences per group


def load_sentence_pool(seed: int) -> SentencePool:
    """Split the bundled corpora into distinct sentences and deal them into sources and fillers (by ``seed``)."""
    from rrra_core.data.textio import iter_jsonl, resolve_data_file
    from rrra_core.runtime.paths import demo_dataset_dir

    texts: list[str] = []
    group: list[int] = []
    titles: list[str] = []
    seen: set[str] = set()
    for name in SOURCES:
        for _, obj in iter_jsonl(resolve_data_file(demo_dataset_dir(name), "corpus")):
            g = len(titles)
            titles.append(" ".join(str(obj.get("title") or "").split()))
            for piece in _SPLIT.split(str(obj.get("text") or "")):
                sent = " ".join(piece.split())
                if _MIN_WORDS <= len(sent.split()) <= _MAX_WORDS and sent not in seen:
                    seen.add(sent)
                    texts.append(sent)
                    group.append(g)
    rng = random.Random(f"{seed}/pool")
    long_enough = [i for i, t in enumerate(texts) if _MIN_SOURCE_WORDS <= len(t.split()) <= _MAX_SOURCE_WORDS]
    rng.shuffle(long_enough)
    cut = int(_SOURCE_SHARE * len(long_enough))
    sources = sorted(long_enough[:cut])
    chosen = set(sources)
    fillers = [i for i, t in enumerate(texts) if i not in chosen and len(t.split()) <= _MAX_FILLER_WORDS]
    by_group: dict[int, list[int]] = {}
    for i in sources:
        by_group.setdefault(group[i], []).append(i)
    return SentencePool(texts, group, titles, sources, fillers, by_group)


@dataclass(frozen=True)
class CollectionPlan:
    """Who is who in the collection: each query's two source sentences, its false negatives, every document's id.

    Documents are numbered as items: ``0..Q-1`` the queries' positives (query ``i``'s is item ``i``),
    then the false negatives (``fn_query``, ``fn_kind``), then the distractors; ``slot[item]`` is the
    document's number in the corpus (its id).
    """

    cfg: ScaleCollectionConfig
    pairs: list[tuple[int, int]]  # (Q,) each query's two source sentences
    test: frozenset[int]  # query numbers in the test split
    fn_query: list[int]  # (F,) the query each false negative belongs to
    fn_kind: list[int]  # (F,) index into _KINDS
    slot: list[int]  # (N,) item -> document number
    cross_group: int  # queries whose two sentences come from two documents

    @property
    def n_queries(self) -> int:
        return len(self.pairs)

    @property
    def n_fn(self) -> int:
        return len(self.fn_query)

    def doc_id(self, item: int) -> str:
        return f"d{self.slot[item]:0{len(str(self.cfg.docs - 1))}d}"

    def query_id(self, i: int) -> str:
        return f"q{i:0{len(str(self.n_queries - 1))}d}"


def _draw_pairs(pool: SentencePool, n: int, rng: random.Random) -> tuple[list[tuple[int, int]], int]:
    """``n`` distinct unordered pairs of source sentences, of one document where it has an unused pair."""
    if len(pool.sources) < 2:
        raise ConfigError("the bundled corpora gave fewer than two source sentences")
    limit = len(pool.sources) * (len(pool.sources) - 1) // 2
    if n > limit:
        raise ConfigError(f"at most {limit:,} queries can be made from the bundled sentences, asked for {n:,}")
    used: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int]] = []
    cross = 0
    while len(pairs) < n:
        a = rng.choice(pool.sources)
        mates = pool.by_group[pool.group[a]]
        pair = None
        for _ in range(8 if len(mates) > 1 else 0):
            b = rng.choice(mates)
            key = (min(a, b), max(a, b))
            if b != a and key not in used:
                pair = key
                break
        if pair is None:
            b = rng.choice(pool.sources)
            key = (min(a, b), max(a, b))
            if b == a or key in used:
                continue
            pair = key
            cross += 1
        used.add(pair)
        pairs.append(pair if rng.random() < 0.5 else (pair[1], pair[0]))
    return pairs, cross


def plan_collection(cfg: ScaleCollectionConfig, pool: SentencePool) -> CollectionPlan:
    """The plan for ``cfg``; too few documents for the queries' positives and false negatives is a one-line error."""
    rng = random.Random(f"{cfg.seed}/plan")
    n_queries = cfg.queries + cfg.n_test
    pairs, cross = _draw_pairs(pool, n_queries, rng)
    test = frozenset(rng.sample(range(n_queries), cfg.n_test))
    fn_query: list[int] = []
    fn_kind: list[int] = []
    for i in range(n_queries):
        if rng.random() < cfg.fn_share:
            for _ in range(rng.randint(1, cfg.max_fn)):
                fn_query.append(i)
                fn_kind.append(rng.randrange(len(_KINDS)))
    needed = n_queries + len(fn_query)
    if cfg.docs < needed:
        raise ConfigError(
            f"--docs {cfg.docs:,} is too few: {n_queries:,} queries ({cfg.queries:,} training, {cfg.n_test:,} test) "
            f"need {n_queries:,} positives and {len(fn_query):,} false negatives, {needed:,} documents"
        )
    slot = list(range(cfg.docs))
    rng.shuffle(slot)
    return CollectionPlan(cfg, pairs, test, fn_query, fn_kind, slot, cross)


def _positive(plan: CollectionPlan, pool: SentencePool, i: int) -> list[int]:
    """Query ``i``'s positive: its two source sentences and 1-2 fillers, in a random order."""
    rng = random.Random(f"{plan.cfg.seed}/pos/{i}")
    sents = list(plan.pairs[i]) + [rng.choice(pool.fillers) for _ in range(rng.randint(*_FILLERS))]
    rng.shuffle(sents)
    return sents


def _false_negative(plan: CollectionPlan, pool: SentencePool, j: int) -> list[int]:
    """False negative ``j``: a near-duplicate of its query's positive, or its source sentences with new fillers."""
    i = plan.fn_query[j]
    rng = random.Random(f"{plan.cfg.seed}/fn/{j}")
    pos = _positive(plan, pool, i)
    if _KINDS[plan.fn_kind[j]] == "recombination":
        sents = list(plan.pairs[i]) + [rng.choice(pool.fillers) for _ in range(rng.randint(*_FILLERS))]
        rng.shuffle(sents)
        return sents
    sents = list(pos)
    keep = set(plan.pairs[i])
    for _ in range(rng.randint(1, 2)):
        fill = [k for k, s in enumerate(sents) if s not in keep]
        op = rng.randrange(3)
        if op == 0 and len(fill) > 1:  # drop a filler (at least one stays)
            del sents[rng.choice(fill)]
        elif op == 1 and len(sents) > 1:  # swap two neighbours
            k = rng.randrange(len(sents) - 1)
            sents[k], sents[k + 1] = sents[k + 1], sents[k]
        else:  # replace a filler
            sents[rng.choice(fill)] = rng.choice(pool.fillers)
    if sents == pos:  # the edits undid each other: one more that cannot
        k = rng.choice([k for k, s in enumerate(sents) if s not in keep])
        new = rng.choice(pool.fillers)
        while new == sents[k]:
            new = rng.choice(pool.fillers)
        sents[k] = new
    return sents


def _distractor(plan: CollectionPlan, pool: SentencePool, k: int) -> list[int]:
    """Distractor ``k``: 2-4 fillers, half of the time with one source sentence (relevant to no query)."""
    rng = random.Random(f"{plan.cfg.seed}/dis/{k}")
    sents = [rng.choice(pool.fillers) for _ in range(rng.randint(*_DISTRACTOR_SENTENCES))]
    if rng.random() < 0.5:
        sents[rng.randrange(len(sents))] = rng.choice(pool.sources)
    return sents


def document_sentences(plan: CollectionPlan, pool: SentencePool, item: int) -> list[int]:
    """The sentence numbers of document ``item`` (see :class:`CollectionPlan` for the numbering)."""
    q, f = plan.n_queries, plan.n_fn
    if item < q:
        return _positive(plan, pool, item)
    if item < q + f:
        return _false_negative(plan, pool, item - q)
    return _distractor(plan, pool, item - q - f)


def query_text(plan: CollectionPlan, pool: SentencePool, i: int) -> str:
    """Query ``i``: a run of 5-10 words of its first source sentence and 3-6 of its second."""
    rng = random.Random(f"{plan.cfg.seed}/query/{i}")
    parts = []
    for s, (lo, hi) in zip(plan.pairs[i], ((5, 10), (3, 6)), strict=True):
        words = pool.texts[s].split()
        n = min(len(words), rng.randint(lo, hi))
        start = rng.randint(0, len(words) - n)
        parts.append(" ".join(words[start : start + n]).strip(".,;:!?\"'()[]"))
    return " ".join(parts)


def _documents(plan: CollectionPlan, pool: SentencePool) -> Iterator[tuple[str, str, str]]:
    """``(id, title, text)`` of every document, in id order."""
    item_at = [0] * plan.cfg.docs
    for item, s in enumerate(plan.slot):
        item_at[s] = item
    for s in range(plan.cfg.docs):
        item = item_at[s]
        sents = document_sentences(plan, pool, item)
        # The title is the first sentence's source document's: the positive's says nothing a distractor's does not.
        yield plan.doc_id(item), pool.titles[pool.group[sents[0]]], " ".join(pool.texts[x] for x in sents)


def _gz_tsv(path: Path) -> gzip.GzipFile:
    # mtime 0: the same rows give the same bytes whatever the day.
    return gzip.GzipFile(path, "wb", compresslevel=6, mtime=0)


def write_scale_collection(cfg: ScaleCollectionConfig) -> dict[str, Any]:
    """Write the collection of ``cfg`` into ``cfg.out`` (into a temporary sibling, renamed when whole).

    Returns what ``collection.json`` holds. An existing, non-empty ``out`` is refused in one line.
    """
    if not cfg.out:
        raise ConfigError("name the folder to write: --out DIR")
    out = Path(cfg.out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not empty; choose a new folder")
    t0 = time.perf_counter()
    pool = load_sentence_pool(cfg.seed)
    plan = plan_collection(cfg, pool)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "qrels").mkdir(parents=True)
    (tmp / "answers").mkdir()
    try:
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh:
            for doc_id, title, text in _documents(plan, pool):
                fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            for i in range(plan.n_queries):
                fh.write(json.dumps({"_id": plan.query_id(i), "text": query_text(plan, pool, i)}) + "\n")
        fns: dict[int, list[int]] = {}
        for j, i in enumerate(plan.fn_query):
            fns.setdefault(i, []).append(plan.n_queries + j)
        for split, keep in (("train", False), ("test", True)):
            queries = [i for i in range(plan.n_queries) if (i in plan.test) == keep]
            with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
                fh.write("query-id\tcorpus-id\tscore\n")
                fh.writelines(f"{plan.query_id(i)}\t{plan.doc_id(i)}\t1\n" for i in queries)
            with _gz_tsv(tmp / "answers" / f"{split}_has_answer.tsv.gz") as gz:
                gz.write(b"query-id\tcorpus-id\tscore\tsame_article\n")
                for i in queries:
                    for item in sorted(fns.get(i, ()), key=plan.doc_id):
                        gz.write(f"{plan.query_id(i)}\t{plan.doc_id(item)}\t1\t1\n".encode())
        info = _collection_info(cfg, plan, pool, fns, time.perf_counter() - t0)
        (tmp / COLLECTION_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_README, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _collection_info(
    cfg: ScaleCollectionConfig, plan: CollectionPlan, pool: SentencePool, fns: dict[int, list[int]], seconds: float
) -> dict[str, Any]:
    n_test = len(plan.test)
    train_fn = sum(len(v) for i, v in fns.items() if i not in plan.test)
    return {
        "generator": "rrra_core.data.scale_collection",
        "format": FORMAT,
        "settings": {k: v for k, v in asdict(cfg).items() if k != "out"} | {"test_queries": cfg.n_test},
        "counts": {
            "docs": cfg.docs,
            "positives": plan.n_queries,
            "false_negatives": plan.n_fn,
            "false_negatives_by_kind": {k: plan.fn_kind.count(n) for n, k in enumerate(_KINDS)},
            "distractors": cfg.docs - plan.n_queries - plan.n_fn,
            "train_queries": plan.n_queries - n_test,
            "test_queries": n_test,
            "train_queries_with_false_negatives": sum(1 for i in fns if i not in plan.test),
            "train_false_negatives": train_fn,
            "test_false_negatives": plan.n_fn - train_fn,
            "queries_from_two_documents": plan.cross_group,
            "sentences": len(pool.texts),
            "source_sentences": len(pool.sources),
            "filler_sentences": len(pool.fillers),
        },
        "relevance": "a document is relevant to a query exactly when it holds both of the query's source sentences",
        "truth": "answers/<split>_has_answer.tsv.gz: every relevant document other than the qrels positive",
        "sources": list(SOURCES),
        "seconds": round(seconds, 1),
    }


_README = """# A scale collection (generated)

Made by `scripts/make_scale_collection.py` from the sentences of the collections bundled in
`rrra_core/demo_data` (see `collection.json` for the settings and counts, and
`rrra_core/data/scale_collection.py` for how). A document is relevant to a query exactly when it holds
both of the query's two source sentences; `qrels/` name one such document per query and
`answers/<split>_has_answer.tsv.gz` every other one (the known false negatives).

Terms of the sources (kept from `rrra_core/demo_data/README.md`): SQuAD v1.1 (Rajpurkar et al., 2016),
CC BY-SA 4.0: keep the attribution and share adaptations under the same terms. SciFact (Wadden et al.,
2020), CC BY-NC 2.0: keep this attribution; non-commercial research and demos only. Cranfield and ADI:
the classic SMART test collections (Cornell), distributed for research.
"""
