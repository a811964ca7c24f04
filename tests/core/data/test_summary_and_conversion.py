"""What a BEIR folder holds (the New project check), and training files turned into BEIR folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rrra_core.data import dataset_folder, load_dataset, write_flag, write_tevatron
from rrra_core.data.summary import summarize_dataset
from rrra_core.data.training_files import Passage, TrainingExample
from rrra_core.data.training_to_beir import training_file_to_beir
from rrra_core.runtime.errors import DataError


def test_summary_of_adi_counts_documents_queries_and_each_split() -> None:
    summary = summarize_dataset("adi")
    data = load_dataset("adi", "test")
    assert (summary.documents, summary.queries) == (len(data.corpus), len(data.all_queries))
    assert list(summary.splits) == ["test"]
    assert summary.splits["test"].queries == len(data.qrels)
    assert summary.splits["test"].positives == sum(len(d) for d in data.qrels.values())


def test_a_broken_folder_fails_with_one_line_naming_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(dataset_folder("adi"), folder)
    (folder / "corpus.jsonl.gz").unlink()
    (folder / "corpus.jsonl").write_text('{"_id": "1", "text": "ok"}\n{"text": "no id"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: missing required key '_id'") as err:
        summarize_dataset(folder)
    assert "\n" not in str(err.value)


def test_a_folder_without_splits_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "nosplit"
    shutil.copytree(dataset_folder("adi"), folder)
    shutil.rmtree(folder / "qrels")
    with pytest.raises(DataError, match="no split"):
        summarize_dataset(folder)


def _examples() -> list[TrainingExample]:
    pos = Passage("d1", "relevant text", "T1")
    neg = Passage("d2", "other text")
    return [
        TrainingExample("first query", (pos,), (neg,), query_id="q1"),
        TrainingExample("second query", (neg,), (pos,), query_id="q2"),
    ]


@pytest.mark.parametrize("fmt", ["tevatron", "flag"])
def test_a_training_file_becomes_a_beir_folder_the_loaders_read(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / f"train.{fmt}.jsonl"
    (write_tevatron if fmt == "tevatron" else write_flag)(src, _examples())
    folder = training_file_to_beir(src, tmp_path / "beir")
    data = load_dataset(str(folder), "train")
    assert len(data.corpus) == 2 and len(data.queries) == 2  # the shared passages are one document each
    assert sorted(len(d) for d in data.qrels.values()) == [1, 1]
    if fmt == "tevatron":
        assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}} and data.corpus["d1"].title == "T1"
    again = training_file_to_beir(src, tmp_path / "beir2")
    assert (again / "corpus.jsonl").read_bytes() == (folder / "corpus.jsonl").read_bytes()  # stable ids


def test_a_bad_training_file_names_its_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"query": "q", "pos": ["a"]}) + "\n" + json.dumps({"query": "q2"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        training_file_to_beir(src, tmp_path / "out")
