"""The scale collection: counts, the same files per seed, a complete and honest truth, no id leaks, one-line errors."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from rrra_core.data.beir import load_beir, load_has_answer
from rrra_core.data.scale_collection import (
    ScaleCollectionConfig,
    document_sentences,
    load_sentence_pool,
    plan_collection,
    write_scale_collection,
)
from rrra_core.runtime.cli import run_main
from rrra_core.runtime.errors import ConfigError

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def _make(tmp_path: Path, name: str = "c", **kw) -> tuple[Path, dict]:
    cfg = ScaleCollectionConfig(**{"docs": 1500, "queries": 300, "seed": 0, "out": str(tmp_path / name), **kw})
    return tmp_path / name, write_scale_collection(cfg)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _make(tmp_path_factory.mktemp("scale"))


def test_counts_are_what_was_asked_and_what_collection_json_says(made: tuple[Path, dict]) -> None:
    folder, info = made
    train, test = load_beir(folder, "train"), load_beir(folder, "test")
    assert len(train.corpus) == 1500 and len(train.qrels) == 300 and len(test.qrels) == 10
    assert json.loads((folder / "collection.json").read_text()) == info
    c = info["counts"]
    assert c["positives"] + c["false_negatives"] + c["distractors"] == 1500
    truth = load_has_answer(folder / "answers" / "train_has_answer.tsv.gz", train.corpus, train.queries)
    assert sum(map(len, truth.values())) == c["train_false_negatives"] > 0
    assert len(truth) == c["train_queries_with_false_negatives"]
    assert 0.2 < len(truth) / 300 < 0.4  # fn_share 0.3
    assert all(same for docs in truth.values() for same in docs.values())  # the benchmark's "same article" rows


def test_the_same_seed_writes_the_same_files_and_another_seed_others(tmp_path: Path, made: tuple[Path, dict]) -> None:
    first, _ = made
    again, _ = _make(tmp_path, "again")
    other, _ = _make(tmp_path, "other", seed=1)
    files = ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv", "answers/train_has_answer.tsv.gz"]
    for name in files:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert (first / "corpus.jsonl").read_bytes() != (other / "corpus.jsonl").read_bytes()


def test_truth_is_complete_and_each_false_negative_is_a_copy_or_recombination_of_the_positive(
    made: tuple[Path, dict],
) -> None:
    folder, _ = made
    data = load_beir(folder, "train")
    truth = load_has_answer(folder / "answers" / "train_has_answer.tsv.gz")
    cfg = ScaleCollectionConfig(docs=1500, queries=300, seed=0, out="unused")
    pool = load_sentence_pool(0)
    plan = plan_collection(cfg, pool)
    texts = {d: doc.text for d, doc in data.corpus.items()}
    for i in range(plan.n_queries):
        q = plan.query_id(i)
        if q not in data.qrels:
            continue
        a, b = (pool.texts[s] for s in plan.pairs[i])
        # What the query is made of: a run of words from each of the two source sentences.
        assert all(w in a or w in b for w in data.queries[q].split())
        holding = {d for d, t in texts.items() if a in t and b in t}
        (pos,) = data.qrels[q]
        assert holding == {pos} | set(truth.get(q, {})), q  # every relevant document is labelled or in the truth
        pos_sents = set(document_sentences(plan, pool, i))
        for d in truth.get(q, {}):
            item = plan.slot.index(int(d[1:]))
            fn_sents = set(document_sentences(plan, pool, item))
            assert set(plan.pairs[i]) <= fn_sents  # the query-bearing sentences are kept
            assert texts[d] != texts[pos]
            if plan.fn_kind[item - plan.n_queries] == 0:  # a near-duplicate: at most two fillers changed
                assert len(fn_sents ^ pos_sents) <= 4


def test_ids_and_order_say_nothing_of_the_truth(made: tuple[Path, dict]) -> None:
    folder, _ = made
    data = load_beir(folder, "train")
    truth = load_has_answer(folder / "answers" / "train_has_answer.tsv.gz")
    order = list(data.corpus)
    assert order == sorted(order) and all(d.startswith("d") and d[1:].isdigit() for d in order)
    special = {d for v in data.qrels.values() for d in v} | {d for v in truth.values() for d in v}
    # The positives and false negatives are spread over the corpus, not in a block at the start.
    spots = sorted(order.index(d) for d in special)
    assert spots[0] < 100 and spots[-1] > 1400
    # A query's positive and its false negatives are not neighbours in id order.
    gaps = [abs(int(p[1:]) - int(d[1:])) for q, v in truth.items() for p in data.qrels[q] for d in v]
    assert sorted(gaps)[len(gaps) // 2] > 50


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--docs", "100", "--queries", "300"], "is too few"),
        (["--docs", "0", "--queries", "10"], "at least 1"),
        (["--docs", "100", "--queries", "10", "--fn-share", "1.5"], "--fn-share"),
        (["--docs", "100", "--queries", "ten"], "expects int"),
        (["--docs", "100", "--queries", "10", "--out", ""], "--out"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sys.path.insert(0, str(SCRIPTS))
    import make_scale_collection

    out = ["--out", str(tmp_path / "c")] if "--out" not in argv else []
    assert run_main(make_scale_collection.main, [*argv, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "c").exists()


def test_an_existing_folder_is_never_written_into(made: tuple[Path, dict], tmp_path: Path) -> None:
    folder, _ = made
    before = (folder / "corpus.jsonl").stat().st_mtime_ns
    with pytest.raises(ConfigError, match="not empty"):
        write_scale_collection(ScaleCollectionConfig(docs=1500, queries=300, out=str(folder)))
    assert (folder / "corpus.jsonl").stat().st_mtime_ns == before
    assert gzip.decompress((folder / "answers" / "test_has_answer.tsv.gz").read_bytes()).startswith(b"query-id")
