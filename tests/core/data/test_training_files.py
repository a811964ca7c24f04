"""Tests for training-file readers/writers and atomic writing."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rrra_core.data import (
    Passage,
    TrainingExample,
    atomic_write_text,
    atomic_writer,
    open_text,
    read_flag,
    read_tevatron,
    read_training_file,
    write_flag,
    write_tevatron,
)
from rrra_core.runtime.errors import DataError


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


TEVATRON_EXAMPLES = [
    TrainingExample(
        query="what is a wing?",
        positives=(Passage("d1", "A wing is ...", "Wings", 1.5),),
        negatives=(Passage("d2", "Tails ...", ""), Passage("d3", "Flaps ...", "Flaps", -0.25)),
        query_id="q1",
    ),
    TrainingExample(
        query="naïve café ✓",
        positives=(Passage("7", "unicode ✓ text"), Passage("8", "second")),
        negatives=(),
        query_id=None,
    ),
]

FLAG_EXAMPLES = [
    TrainingExample(
        query="what is a wing?",
        positives=(Passage(None, "A wing is ...", score=0.9),),
        negatives=(Passage(None, "Tails ...", score=0.1), Passage(None, "Flaps ...", score=0.2)),
    ),
    TrainingExample(query="naïve café ✓", positives=(Passage(None, "x"),), negatives=()),
]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train.jsonl", "train.jsonl.gz"])
def test_tevatron_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_tevatron(path, TEVATRON_EXAMPLES)
    assert read_tevatron(path) == TEVATRON_EXAMPLES
    assert read_training_file(path) == TEVATRON_EXAMPLES
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("name", ["train.jsonl", "train.jsonl.gz"])
def test_flag_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_flag(path, FLAG_EXAMPLES)
    assert read_flag(path) == FLAG_EXAMPLES
    assert read_training_file(path) == FLAG_EXAMPLES


def test_tevatron_score_written_only_when_present(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_tevatron(path, TEVATRON_EXAMPLES)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["positive_passages"][0]["score"] == 1.5
    assert "score" not in first["negative_passages"][0]
    second = json.loads(path.read_text(encoding="utf-8").splitlines()[1])
    assert "query_id" not in second


def test_flag_writer_folds_title_into_text(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    example = TrainingExample(
        "q",
        (Passage("d1", "A wing is ...", "Wings"),),
        (Passage("d2", "Tails ..."), Passage("d3", "Flaps ...", "Flaps")),
    )
    write_flag(path, [example])
    obj = json.loads(path.read_text(encoding="utf-8"))
    assert obj == {"query": "q", "pos": ["Wings A wing is ..."], "neg": ["Tails ...", "Flaps Flaps ..."]}
    # Partial scores on the negatives cannot be expressed, so the write refuses.
    with pytest.raises(ValueError):
        write_flag(
            tmp_path / "g.jsonl",
            [
                TrainingExample(
                    "q", (Passage(None, "p", score=1.0),), (Passage(None, "n", score=1.0), Passage(None, "m"))
                )
            ],
        )
    assert not (tmp_path / "g.jsonl").exists()
    assert no_temp_files(tmp_path)


def test_flag_reader_ignores_unknown_keys_and_stringifies_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "f.jsonl", jsonl({"query": "q", "pos": ["p"], "prompt": "Represent this", "type": "x"}))
    assert read_flag(path) == [TrainingExample("q", (Passage(None, "p"),), ())]
    tev = write(
        tmp_path / "t.jsonl",
        jsonl({"query_id": 5, "query": "q", "positive_passages": [{"docid": 9, "text": "p"}], "negative_passages": []}),
    )
    [ex] = read_tevatron(tev)
    assert ex.query_id == "5" and ex.positives[0].docid == "9" and ex.positives[0].title == ""


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("reader", [read_tevatron, read_flag, read_training_file])
def test_missing_file(tmp_path: Path, reader) -> None:
    with pytest.raises(DataError, match="file not found") as err:
        reader(tmp_path / "absent.jsonl")
    one_line(err)


@pytest.mark.parametrize("reader", [read_tevatron, read_flag, read_training_file])
def test_malformed_json(tmp_path: Path, reader) -> None:
    good = {"query": "q", "pos": ["p"], "positive_passages": [{"docid": "1", "text": "p"}]}
    path = write(tmp_path / "m.jsonl", jsonl(good) + "\n" + '{"query": "q", "pos": [}\n')
    with pytest.raises(DataError, match="malformed JSON") as err:
        reader(path)
    assert f"{path}:3:" in one_line(err)


@pytest.mark.parametrize("reader", [read_tevatron, read_flag])
def test_non_utf8(tmp_path: Path, reader) -> None:
    first = b'{"query": "q", "pos": ["p"], "positive_passages": [{"text": "p"}]}\n'
    path = write(tmp_path / "u.jsonl.gz", first + b'{"query": "\xc3\x28"}\n')
    with pytest.raises(DataError, match=r"not valid UTF-8 \(byte 0xc3") as err:
        reader(path)
    assert f"{path}:2:" in one_line(err)


TEVATRON_BAD = [
    ({"positive_passages": [{"docid": "1", "text": "p"}]}, "missing required key 'query'"),
    ({"query": "q"}, "missing required key 'positive_passages'"),
    ({"query": 3, "positive_passages": [{"text": "p"}]}, "'query' must be a string"),
    ({"query": "q", "positive_passages": {"text": "p"}}, "'positive_passages' must be a list"),
    ({"query": "q", "positive_passages": ["p"]}, r"positive_passages\[0\] must be an object"),
    ({"query": "q", "positive_passages": [{"docid": "1"}]}, "missing required key 'text'"),
    ({"query": "q", "positive_passages": [{"text": "p", "score": "hi"}]}, "score must be a number"),
    ({"query": "q", "positive_passages": [{"text": "p", "docid": 1.5}]}, "docid must be a string"),
    ({"query": "q", "positive_passages": []}, "at least one positive"),
    ({"query": "q", "positive_passages": [{"text": "p"}], "negative_passages": [{"text": 1}]}, "text must be a string"),
]


@pytest.mark.parametrize(("record", "pattern"), TEVATRON_BAD)
def test_tevatron_bad_records(tmp_path: Path, record: dict, pattern: str) -> None:
    ok = {"query": "q", "positive_passages": [{"docid": "1", "text": "p"}]}
    path = write(tmp_path / "t.jsonl", jsonl(ok, record))
    with pytest.raises(DataError, match=pattern) as err:
        read_tevatron(path)
    assert f"{path}:2:" in one_line(err)


FLAG_BAD = [
    ({"pos": ["p"]}, "missing required key 'query'"),
    ({"query": "q"}, "missing required key 'pos'"),
    ({"query": "q", "pos": "p"}, "'pos' must be a list"),
    ({"query": "q", "pos": ["p", 3]}, r"pos\[1\] must be a string"),
    ({"query": "q", "pos": ["p"], "neg": [None]}, r"neg\[0\] must be a string"),
    ({"query": "q", "pos": []}, "at least one positive"),
    ({"query": "q", "pos": ["p"], "pos_scores": [1, 2]}, "'pos_scores' has 2 values"),
    ({"query": "q", "pos": ["p"], "pos_scores": ["x"]}, "must be a number"),
]


@pytest.mark.parametrize(("record", "pattern"), FLAG_BAD)
def test_flag_bad_records(tmp_path: Path, record: dict, pattern: str) -> None:
    path = write(tmp_path / "f.jsonl", jsonl({"query": "q", "pos": ["p"]}, record))
    with pytest.raises(DataError, match=pattern) as err:
        read_flag(path)
    assert f"{path}:2:" in one_line(err)


def test_detect_unknown_shape(tmp_path: Path) -> None:
    path = write(tmp_path / "x.jsonl", "\n" + jsonl({"question": "q", "answers": ["a"]}))
    with pytest.raises(DataError, match="unknown training format") as err:
        read_training_file(path)
    assert f"{path}:2:" in one_line(err)
    with pytest.raises(DataError, match="no training examples"):
        read_training_file(write(tmp_path / "empty.jsonl", "\n\n"))


def test_mixed_file_fails_on_the_odd_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.jsonl", jsonl({"query": "q", "pos": ["p"]}, {"query": "q", "positive_passages": []}))
    with pytest.raises(DataError, match="missing required key 'pos'") as err:
        read_training_file(path)
    assert f"{path}:2:" in one_line(err)


# --- atomic writing --------------------------------------------------------------------------


def failing_lines() -> Iterator[str]:
    yield "first"
    yield "second"
    raise RuntimeError("boom")


@pytest.mark.parametrize("name", ["out.txt", "out.txt.gz"])
def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    with pytest.raises(RuntimeError, match="boom"):
        atomic_write_text(target, failing_lines())
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.txt", "out.txt.gz"])
def test_atomic_write_keeps_old_contents_on_failure(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    atomic_write_text(target, ["old", "lines"])
    with pytest.raises(RuntimeError):
        atomic_write_text(target, failing_lines())
    with open_text(target) as fh:
        assert fh.read() == "old\nlines\n"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_atomic_writer_failure_inside_training_writer(tmp_path: Path) -> None:
    target = tmp_path / "train.jsonl"
    write_tevatron(target, TEVATRON_EXAMPLES)
    before = target.read_bytes()

    def examples() -> Iterator[TrainingExample]:
        yield TEVATRON_EXAMPLES[0]
        raise RuntimeError("upstream failed")

    with pytest.raises(RuntimeError):
        write_tevatron(target, examples())
    assert target.read_bytes() == before
    assert no_temp_files(tmp_path)


def test_atomic_writer_success_and_gzip(tmp_path: Path) -> None:
    with atomic_writer(tmp_path / "a.txt.gz") as fh:
        fh.write("héllo\n")
    assert gzip.decompress((tmp_path / "a.txt.gz").read_bytes()).decode("utf-8") == "héllo\n"
    atomic_write_text(tmp_path / "b.txt", "raw string, no newline added")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "raw string, no newline added"
    with pytest.raises(DataError, match="output folder not found"):
        atomic_write_text(tmp_path / "missing" / "c.txt", "x")
