"""Uploads and converted training files: names never leave <home>/datasets, and only a checked folder lands there."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrra_core.data import dataset_folder, write_tevatron
from rrra_core.data.training_files import Passage, TrainingExample
from rrra_core.data.uploads import dataset_slug, save_training_file, save_uploads, upload_target
from rrra_core.runtime.errors import UserError
from rrra_core.runtime.paths import datasets_dir

ADI_FILES = ("corpus.jsonl.gz", "queries.jsonl.gz", "qrels/test.tsv")


def _adi_files() -> list[tuple[str, bytes]]:
    adi = dataset_folder("adi")
    return [(p.name, p.read_bytes()) for p in (adi / f for f in ADI_FILES)]


def _training_bytes(tmp_path: Path) -> bytes:
    pos, neg = Passage("d1", "relevant text", "T1"), Passage("d2", "other text")
    src = tmp_path / "made.jsonl"
    write_tevatron(src, [TrainingExample("q one", (pos,), (neg,), query_id="q1")])
    return src.read_bytes()


def _old_dataset(name: str) -> Path:
    old = datasets_dir() / name
    (old / "qrels").mkdir(parents=True)
    (old / "corpus.jsonl").write_text('{"_id": "old", "text": "old doc"}\n', encoding="utf-8")
    (old / "queries.jsonl").write_text('{"_id": "oq", "text": "old query"}\n', encoding="utf-8")
    (old / "qrels" / "old.tsv").write_text("query-id\tcorpus-id\tscore\noq\told\t1\n", encoding="utf-8")
    return old


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize(
    ("sent", "target"),
    [
        ("corpus.jsonl", "corpus.jsonl"),
        ("queries.jsonl.gz", "queries.jsonl.gz"),
        ("dev.tsv", "qrels/dev.tsv"),
        ("train_v2.jsonl.gz", "source/train_v2.jsonl.gz"),
    ],
)
def test_an_expected_base_name_has_its_place_in_the_folder(sent: str, target: str) -> None:
    assert upload_target(sent) == target


@pytest.mark.parametrize(
    "sent",
    ["../../evil.jsonl", "/tmp/x/evil.jsonl", "qrels/test.tsv", "..\\evil.jsonl", "..", "", "notes.txt", ".x.jsonl"],
)
def test_a_name_with_a_folder_or_an_unexpected_name_is_refused_in_one_line(sent: str) -> None:
    with pytest.raises(UserError, match="refused|name") as err:
        upload_target(sent)
    assert "\n" not in str(err.value)


def test_a_hostile_name_among_good_files_writes_nothing_anywhere(isolated_home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    files = [*_adi_files(), ("../../evil.jsonl", b"evil\n"), (str(outside / "evil.tsv"), b"evil\n")]
    with pytest.raises(UserError, match=r"upload '\.\./\.\./evil\.jsonl' refused: a file name may not contain"):
        save_uploads(files, "mine")
    assert not list(isolated_home.rglob("evil*")) and not outside.exists()
    assert _tree(datasets_dir()) == set()


def test_uploads_become_a_checked_beir_folder_and_nothing_else(isolated_home: Path) -> None:
    summary = save_uploads(_adi_files(), "my data")
    assert summary.folder == datasets_dir().resolve() / "my-data"
    assert (summary.documents, summary.queries, list(summary.splits)) == (82, 35, ["test"])
    assert _tree(datasets_dir()) == {"my-data", *(f"my-data/{p}" for p in _tree(summary.folder))}
    assert _tree(summary.folder) == {"corpus.jsonl.gz", "queries.jsonl.gz", "qrels", "qrels/test.tsv"}


def test_a_failed_check_names_the_uploaded_file_and_leaves_nothing(isolated_home: Path) -> None:
    files = [("corpus.jsonl", b'{"_id": "1", "text": "ok"}\n{"text": "no id"}\n'), *_adi_files()[1:]]
    with pytest.raises(UserError) as err:
        save_uploads(files, "mine")
    assert str(err.value) == "corpus.jsonl:2: missing required key '_id'"
    assert _tree(datasets_dir()) == set()


def test_an_existing_name_is_refused_and_left_as_it_was(isolated_home: Path) -> None:
    old = _old_dataset("mine")
    before = {p: (old / p).read_bytes() for p in _tree(old) if (old / p).is_file()}
    with pytest.raises(UserError, match="a dataset called 'mine' already exists"):
        save_uploads(_adi_files(), "mine")
    assert {p: (old / p).read_bytes() for p in _tree(old) if (old / p).is_file()} == before
    assert _tree(datasets_dir()) == {"mine", *(f"mine/{p}" for p in before), "mine/qrels"}


def test_replacing_swaps_the_whole_folder_never_mixing_old_files(isolated_home: Path) -> None:
    _old_dataset("mine")
    summary = save_uploads(_adi_files(), "mine", replace=True)
    assert list(summary.splits) == ["test"]  # the old qrels/old.tsv is gone, not a second split
    assert _tree(datasets_dir()) == {"mine", "mine/qrels", *(f"mine/{f}" for f in ADI_FILES)}


def test_a_replacement_that_fails_its_check_keeps_the_old_dataset(isolated_home: Path) -> None:
    old = _old_dataset("mine")
    with pytest.raises(UserError, match="no split"):
        save_uploads(_adi_files()[:2], "mine", replace=True)
    assert (old / "qrels" / "old.tsv").is_file() and (old / "corpus.jsonl").read_text().startswith('{"_id": "old"')
    assert {p.name for p in datasets_dir().iterdir()} == {"mine"}


def test_one_training_file_is_converted_where_it_is_staged(isolated_home: Path, tmp_path: Path) -> None:
    summary = save_uploads([("train.jsonl", _training_bytes(tmp_path))], "converted")
    assert (summary.documents, summary.queries, list(summary.splits)) == (2, 1, ["train"])
    assert "source/train.jsonl" in _tree(summary.folder)
    with pytest.raises(UserError, match="upload it alone"):
        save_uploads([("train.jsonl", b""), *_adi_files()], "other")


def test_a_training_file_on_disk_follows_the_same_rules(isolated_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "données.jsonl"
    src.write_bytes(_training_bytes(tmp_path))
    assert save_training_file(src).folder.name == "donnees"  # the file's stem, made ASCII
    with pytest.raises(UserError, match="already exists"):
        save_training_file(src)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl:1"):
        save_training_file(bad, "donnees", replace=True)
    assert {p.name for p in datasets_dir().iterdir()} == {"donnees"}


@pytest.mark.parametrize(
    ("typed", "slug"),
    [("Café données", "Cafe-donnees"), ("../../etc", "etc"), (".staging-x", "staging-x"), ("Ｗｉｄｅ", "Wide")],
)
def test_a_dataset_name_becomes_an_ascii_folder_name(typed: str, slug: str) -> None:
    assert dataset_slug(typed) == slug


def test_a_name_with_nothing_ascii_is_refused_with_the_real_reason() -> None:
    with pytest.raises(UserError, match=r"the dataset name '数据' has no ASCII letter or digit"):
        dataset_slug("数据")
    with pytest.raises(UserError, match="name the dataset"):
        dataset_slug("   ")
