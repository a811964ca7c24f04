"""A new project: a phase-2 run on any BEIR folder, with the encoder and training split people chose.

The demo build (``workflows/demo.py``) is this for one embedded collection;
here the collection, the encoder (the bundled MiniLM or a local model folder)
and the split are the user's. The run encodes the corpus, mines each training
query's top-K, trains the adapter and scores every candidate, so the app can
browse and review it like the demo. ``scripts/new_project.py`` is the driver
the New project page starts as a background job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.paths import DEMO_DATASETS
from rrra_core.runtime.reports import PROGRESS_FILE
from rrra_core.runtime.runs import create_or_resume_run

__all__ = ["ProjectConfig", "project_run_id", "pool_depths", "build_project_run"]


@dataclass
class ProjectConfig:
    """What a new project's first run is built from."""

    dataset: str = opt("", "BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or an embedded name")
    model: str = opt("minilm", "encoder: 'minilm' (the bundled all-MiniLM-L6-v2) or a local model folder")
    train_split: str = opt("train", "qrels split whose queries train the adapter and get reviewed")
    max_train_queries: int | None = opt(800, "training queries the adapter learns from (all when unset)")
    top_k: int = opt(100, "candidates scored per query (cut to the corpus when it is smaller)")
    doc_max_length: int = opt(128, "max word pieces per document")
    epochs: int = opt(5, "adapter epochs")
    seed: int = opt(0, "random seed")
    run_id: str = opt("", "run id (default: project-<dataset folder name>)")

    def __post_init__(self) -> None:
        for name in ("top_k", "doc_max_length", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_train_queries is not None and self.max_train_queries < 1:
            raise ConfigError(f"max_train_queries must be at least 1 (or unset for all), got {self.max_train_queries}")


def project_run_id(cfg: ProjectConfig) -> str:
    """The run's id: the one given, else ``project-<folder name>`` in the characters run ids allow."""
    if cfg.run_id:
        return cfg.run_id
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(cfg.dataset).name).strip("-.") or "data"
    return f"project-{stem}"


def pool_depths(top_k: int, n_docs: int) -> tuple[int, tuple[int, int]]:
    """(K, ranks of the synthetic wrong positives), fitted to a corpus of ``n_docs``.

    The defaults (K 100, wrong positives from ranks 100-300) assume a corpus of
    thousands; a small collection of a few dozen documents would ask for ranks
    it does not have, so K keeps a third of the corpus below it at most.
    """
    if n_docs < 3:
        raise ConfigError(f"the corpus has {n_docs} document(s); a project needs at least 3")
    k = max(1, min(top_k, n_docs * 2 // 3))
    return k, (k, max(k + 1, min(3 * k, n_docs)))


def phase2_setup(enc: Any, dataset: str, train_split: str, top_k: int, seed: int, epochs: int, **fields: Any):  # noqa: ANN201
    """``(training data, Phase2Config)`` of a phase-2 run on ``dataset``, its inputs checked first.

    Model, weights, lengths and split are checked before anything is written, so a mistake leaves no run; the
    pool depths fit the corpus (:func:`pool_depths`); ``fields`` are further ``Phase2Config`` settings.
    """
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.data.beir import dataset_folder, load_dataset
    from rrra_core.runtime.cli import check_run_inputs
    from rrra_core.training.phase2 import Phase2Config

    lengths = {"query_max_length": enc.query_max_length, "doc_max_length": enc.doc_max_length}
    check_run_inputs(enc.model, dataset, [train_split], **lengths)
    folder = dataset_folder(dataset)
    data = load_dataset(dataset, train_split)
    k, fp_ranks = pool_depths(top_k, len(data.corpus))
    p2 = Phase2Config(
        # A folder by its absolute path: the run names its data the same way whatever directory reads it.
        dataset=dataset if dataset in DEMO_DATASETS else str(folder.resolve()),
        train_split=train_split,
        subsample_seed=seed,
        labels=LabelConfig(top_k=k, fp_rank_range=fp_ranks, seed=seed),
        fit=AdapterFitConfig(epochs=epochs, seed=seed),
        **fields,
    )
    return data, p2


def start_phase2_run(config: dict[str, Any], run_id: str):  # noqa: ANN201 - a Run
    """The run ``run_id`` for ``config``: new, or these settings' unfinished run (a killed build resumes).

    A taken id (other settings) or these settings' finished run is a one-line ``ConfigError``.
    """
    run = create_or_resume_run("phase2", config, run_id)
    if (run.read_json(PROGRESS_FILE) or {}).get("status") == "done":
        raise ConfigError(f"run {run_id!r} is already built with these settings ({run.path}); choose another run id")
    return run


def build_project_run(cfg: ProjectConfig) -> dict[str, Any]:
    """Build (or finish, on a second call) the project's phase-2 run; returns its metrics."""
    # Imported here, not at the top: the app imports this module for the config and the run id,
    # and the app process must never load torch.
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.training.phase2 import phase2_config_dict, train_phase2

    if not cfg.dataset:
        raise ConfigError("name a dataset: a BEIR folder or an embedded dataset")
    enc = EncoderConfig(model=cfg.model, query_max_length=48, doc_max_length=cfg.doc_max_length)
    data, p2 = phase2_setup(
        enc, cfg.dataset, cfg.train_split, cfg.top_k, cfg.seed, cfg.epochs, max_train_queries=cfg.max_train_queries
    )
    run = start_phase2_run(phase2_config_dict(enc, p2), project_run_id(cfg))
    return train_phase2(run, enc, p2, train_data=data)
