"""Tests for the BEIR loaders and the text I/O helpers they rest on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rrra_core.data import (
    DataWarning,
    Doc,
    available_splits,
    doc_text,
    iter_jsonl,
    iter_lines,
    load_beir,
    load_corpus,
    load_dataset,
    load_has_answer,
    load_qrels,
    load_queries,
    resolve_data_file,
)
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.paths import DEMO_DATA_DIR

HEADER = "query-id\tcorpus-id\tscore\n"


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def make_beir(folder: Path, qrels: str = HEADER + "q1\td1\t1\n") -> Path:
    folder.mkdir()
    write(folder / "corpus.jsonl", jsonl({"_id": "d1", "title": "T", "text": "one"}, {"_id": "d2", "text": "two"}))
    write(folder / "queries.jsonl.gz", jsonl({"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}))
    (folder / "qrels").mkdir()
    write(folder / "qrels" / "test.tsv", qrels)
    return folder


# --- doc_text ---------------------------------------------------------------


def test_doc_text_joins_title_with_one_space() -> None:
    assert doc_text(Doc(title="Title", text="body")) == "Title body"
    assert doc_text(Doc(title="  ", text="body")) == "body"
    assert doc_text(Doc(title="Title", text="body"), with_title=False) == "body"


# --- text helpers -------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    for loader in (load_corpus, load_queries, load_qrels, load_has_answer):
        with pytest.raises(DataError, match="file not found") as err:
            loader(tmp_path / "nope.jsonl")
        one_line(err)


def test_iter_lines_strips_newlines_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"\xef\xbb\xbfone\r\ntwo\nthree")
    assert list(iter_lines(path)) == [(1, "one"), (2, "two"), (3, "three")]


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.jsonl.gz"])
def test_non_utf8_names_the_line(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        load_corpus(path)
    message = one_line(err)
    assert f"{path}:2:" in message
    assert "0xe9" in message


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", '{"_id": "1", "text": "a"}\n\n{"_id": "2", "text": \n')
    with pytest.raises(DataError, match="malformed JSON") as err:
        load_corpus(path)
    assert f"{path}:3:" in one_line(err)


def test_json_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", '["_id", "1"]\n')
    with pytest.raises(DataError, match="expected a JSON object") as err:
        list(iter_jsonl(path))
    assert f"{path}:1:" in one_line(err)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="gzip") as err:
        load_corpus(path)
    one_line(err)


def test_resolve_data_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="corpus.jsonl") as err:
        resolve_data_file(tmp_path, "corpus")
    one_line(err)
    write(tmp_path / "corpus.jsonl.gz", "")
    assert resolve_data_file(tmp_path, "corpus") == tmp_path / "corpus.jsonl.gz"
    write(tmp_path / "corpus.jsonl", "")
    with pytest.raises(DataError, match="keep only one"):
        resolve_data_file(tmp_path, "corpus")


# --- corpus and queries ---------------------------------------------------------


def test_load_corpus_numeric_ids_become_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", jsonl({"_id": 7, "title": "T", "text": "x"}, {"_id": "8", "text": "y"}))
    corpus = load_corpus(path)
    assert corpus == {"7": Doc("T", "x"), "8": Doc("", "y")}


def test_load_corpus_duplicate_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.jsonl", jsonl({"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}, {"_id": "a", "text": "z"})
    )
    with pytest.raises(DataError, match="duplicate _id 'a'") as err:
        load_corpus(path)
    message = one_line(err)
    assert f"{path}:3:" in message and "first on line 1" in message


def test_load_corpus_numeric_and_string_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", jsonl({"_id": 1, "text": "x"}, {"_id": "1", "text": "y"}))
    with pytest.raises(DataError, match="duplicate"):
        load_corpus(path)


@pytest.mark.parametrize(
    ("record", "pattern"),
    [
        ({"text": "x"}, "missing required key '_id'"),
        ({"_id": "a"}, "missing required key 'text'"),
        ({"_id": "a", "text": 3}, "'text' must be a string"),
        ({"_id": ["a"], "text": "x"}, "'_id' must be a string"),
        ({"_id": "", "text": "x"}, "'_id' is empty"),
    ],
)
def test_load_corpus_bad_records(tmp_path: Path, record: dict, pattern: str) -> None:
    path = write(tmp_path / "c.jsonl", jsonl({"_id": "ok", "text": "fine"}, record))
    with pytest.raises(DataError, match=pattern) as err:
        load_corpus(path)
    assert f"{path}:2:" in one_line(err)


def test_empty_doc_text_is_kept_with_one_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.jsonl", jsonl({"_id": "1", "text": ""}, {"_id": "2", "text": "x"}, {"_id": "3", "text": " "})
    )
    with pytest.warns(DataWarning) as record:
        corpus = load_corpus(path)
    assert len(record) == 1
    assert "2 document(s)" in str(record[0].message) and "'1'" in str(record[0].message)
    assert corpus["1"].text == "" and len(corpus) == 3


def test_load_queries_answers_and_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.jsonl", jsonl({"_id": "q1", "text": "a?", "answers": ["x", "y"]}, {"_id": 2, "text": "b?"})
    )
    texts, answers = load_queries(path)
    assert texts == {"q1": "a?", "2": "b?"}
    assert answers == {"q1": ["x", "y"]}
    plain = write(tmp_path / "p.jsonl", jsonl({"_id": "q1", "text": "a?"}))
    assert load_queries(plain) == ({"q1": "a?"}, {})
    dup = write(tmp_path / "d.jsonl", jsonl({"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"}))
    with pytest.raises(DataError, match="duplicate _id 'q1'") as err:
        load_queries(dup)
    assert f"{dup}:2:" in one_line(err)
    bad = write(tmp_path / "b.jsonl", jsonl({"_id": "q1", "text": "a", "answers": "x"}))
    with pytest.raises(DataError, match="'answers' must be a list of strings"):
        load_queries(bad)
    missing = write(tmp_path / "m.jsonl", jsonl({"_id": "q1"}))
    with pytest.raises(DataError, match="missing required key 'text'"):
        load_queries(missing)


# --- qrels --------------------------------------------------------------------------


def test_load_qrels_drops_non_positive_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", HEADER + "q1\td1\t2\nq1\td2\t0\nq2\td1\t-1\n\nq3\td3\t1\n")
    assert load_qrels(path) == {"q1": {"d1": 2}, "q3": {"d3": 1}}


def test_load_qrels_wrong_header(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "qid\tdocid\tscore\nq1\td1\t1\n")
    with pytest.raises(DataError, match="wrong header") as err:
        load_qrels(path)
    message = one_line(err)
    assert f"{path}:1:" in message and "query-id" in message and "qid" in message


def test_load_qrels_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty file"):
        load_qrels(write(tmp_path / "t.tsv", ""))


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ("q1\td1\n", "expected 3 tab-separated fields"),
        ("q1 d1 1\n", "expected 3 tab-separated fields"),
        ("q1\td1\thigh\n", "score must be an integer"),
        ("q1\t\t1\n", "empty query-id or corpus-id"),
    ],
)
def test_load_qrels_bad_rows(tmp_path: Path, row: str, pattern: str) -> None:
    path = write(tmp_path / "t.tsv", HEADER + "q1\td0\t1\n" + row)
    with pytest.raises(DataError, match=pattern) as err:
        load_qrels(path)
    assert f"{path}:3:" in one_line(err)


def test_load_qrels_unknown_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", HEADER + "q1\td1\t1\nq1\tdX\t1\n")
    with pytest.raises(DataError, match="corpus-id 'dX' is not in the corpus") as err:
        load_qrels(path, corpus_ids={"d1"}, query_ids={"q1"})
    assert f"{path}:3:" in one_line(err)
    path = write(tmp_path / "u.tsv", HEADER + "q1\td1\t1\nqX\td1\t0\n")
    with pytest.raises(DataError, match="query-id 'qX' is not in the queries") as err:
        load_qrels(path, corpus_ids={"d1"}, query_ids={"q1"})
    assert f"{path}:3:" in one_line(err)


def test_load_qrels_repeated_pair(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", HEADER + "q1\td1\t1\nq1\td2\t1\nq1\td1\t2\n")
    with pytest.raises(DataError, match="repeated pair") as err:
        load_qrels(path)
    message = one_line(err)
    assert f"{path}:4:" in message and "first on line 2" in message


def test_load_qrels_non_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", HEADER.encode() + b"q1\td1\t1\nq\xff\td1\t1\n")
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        load_qrels(path)
    assert f"{path}:3:" in one_line(err)


def test_load_has_answer(tmp_path: Path) -> None:
    head = "query-id\tcorpus-id\tscore\tsame_article\n"
    path = write(tmp_path / "h.tsv.gz", head + "q1\td1\t1\t1\nq1\td2\t1\t0\n")
    assert load_has_answer(path) == {"q1": {"d1": True, "d2": False}}
    bad = write(tmp_path / "b.tsv", head + "q1\td1\t1\tyes\n")
    with pytest.raises(DataError, match="same_article must be 0 or 1") as err:
        load_has_answer(bad)
    assert f"{bad}:2:" in one_line(err)


# --- folders -------------------------------------------------------------------------


def test_load_beir_folder(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "mini")
    ds = load_beir(folder)
    assert ds.name == "mini" and ds.split == "test"
    assert set(ds.corpus) == {"d1", "d2"}
    assert ds.queries == {"q1": "first?"}
    assert set(ds.all_queries) == {"q1", "q2"}
    assert ds.qrels == {"q1": {"d1": 1}}
    assert ds.answers == {}
    assert load_dataset(str(folder)).qrels == ds.qrels


def test_load_beir_missing_split_lists_available(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "mini")
    with pytest.raises(DataError, match="no split 'dev'.*available splits: test") as err:
        load_beir(folder, split="dev")
    one_line(err)


def test_load_beir_checks_qrels_ids(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "mini", HEADER + "q1\td1\t1\nq1\td9\t1\n")
    with pytest.raises(DataError, match="corpus-id 'd9'") as err:
        load_beir(folder)
    assert "test.tsv:3:" in one_line(err)
    folder = make_beir(tmp_path / "mini2", HEADER + "q9\td1\t1\n")
    with pytest.raises(DataError, match="query-id 'q9'"):
        load_beir(folder)


def test_load_dataset_unknown_name() -> None:
    with pytest.raises(ConfigError, match="squad, scifact, cranfield, adi") as err:
        load_dataset("no-such-dataset")
    one_line(err)


# --- embedded datasets ---------------------------------------------------------------------


def test_available_splits_of_demo_data() -> None:
    assert available_splits(DEMO_DATA_DIR / "cranfield") == ["all", "test", "train"]
    assert available_splits(DEMO_DATA_DIR / "squad") == ["test", "train"]


def test_adi() -> None:
    ds = load_dataset("adi")
    assert len(ds.corpus) == 82
    assert len(ds.queries) == 35
    assert ds.name == "adi" and ds.split == "test"


def test_cranfield() -> None:
    sizes = {}
    for split in ("train", "test", "all"):
        with pytest.warns(DataWarning, match="2 document"):
            ds = load_dataset("cranfield", split)
        assert len(ds.corpus) == 1400
        assert ds.corpus["471"].text == "" and ds.corpus["995"].text == ""
        assert all(1 <= s <= 4 for rel in ds.qrels.values() for s in rel.values())
        sizes[split] = len(ds.queries)
    assert sizes == {"train": 150, "test": 75, "all": 225}


def test_scifact() -> None:
    test = load_dataset("scifact", "test")
    assert len(test.corpus) == 5183
    assert len(test.queries) == 300
    assert len(load_dataset("scifact", "train").queries) == 809
    assert all(isinstance(k, str) for k in test.corpus)


def test_squad() -> None:
    for split in ("train", "test"):
        ds = load_dataset("squad", split)
        assert len(ds.corpus) == 2067
        assert set(ds.answers) == set(ds.queries)
        assert all(ds.answers[q] for q in ds.queries)
    test = load_dataset("squad", "test")
    assert len(test.queries) == 4624
    has = load_has_answer(
        DEMO_DATA_DIR / "squad" / "answers" / "test_has_answer.tsv.gz",
        corpus_ids=test.corpus,
        query_ids=test.all_queries,
    )
    assert has and set(has) <= set(test.queries)
    assert any(same for rel in has.values() for same in rel.values())
    # The file lists paragraphs other than the gold one.
    assert all(d not in test.qrels[q] for q, rel in has.items() for d in rel)


def test_a_lone_surrogate_is_refused_at_load_naming_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.jsonl",
        '{"_id": "1", "text": "emoji \\ud83d\\ude00 is a valid pair"}\n{"_id": "2", "text": "document \\ud800 x"}\n',
    )
    with pytest.raises(DataError, match="lone UTF-16 surrogate") as err:
        load_corpus(path)
    assert f"{path}:2:" in one_line(err)


@pytest.mark.parametrize(
    ("body", "needle"), [("", "only its header"), ("q1\td1\t0\n", "no relevant judgment")], ids=["header", "zeros"]
)
def test_qrels_with_nothing_to_evaluate_are_an_error(tmp_path: Path, body: str, needle: str) -> None:
    path = write(tmp_path / "test.tsv", "query-id\tcorpus-id\tscore\n" + body)
    with pytest.raises(DataError, match=needle) as err:
        load_qrels(path)
    one_line(err)


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl.gz"])
@pytest.mark.parametrize("body", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_an_empty_corpus_or_queries_file_is_named_not_a_qrels_line(tmp_path: Path, name: str, body: str) -> None:
    folder = make_beir(tmp_path / "data")
    write(folder / name, body)
    with pytest.raises(DataError) as err:
        load_beir(folder, "test")
    message = one_line(err)
    assert message.startswith(f"{folder / name}: ") and "empty" in message
    assert "qrels" not in message
