"""Training under ``torchrun`` with 2 CPU processes (gloo) matches one process with the same global batch.

Each comparison runs a driver twice, as a user would: ``python scripts/<driver>``
and ``torchrun --nproc_per_node 2 scripts/<driver>``, both with one thread per
process and a separate RRRA_HOME (so the second run cannot reuse the first
one's embedding cache). The tiny model has dropout switched off: masks are
drawn per process for that process's share of the batch, so with dropout no
two-process run can match one process step for step.

Tolerances. The two runs do the same arithmetic in a different order (each
process encodes part of the batch with its own padding, DDP sums two partial
gradients), so they differ by float32 rounding, which AdamW amplifies a little
where a gradient is nearly zero. Measured on this setup: final weights within
about 1e-5 (training moves them by about 2.5e-3) and metrics identical. Asserted:
weights within WEIGHT_ATOL = 1e-4, metrics within METRIC_ATOL = 1e-3, per-step
losses within a relative 1e-4.

This file is also the worker script of the unit test of the sharding helpers
(``torchrun ... test_distributed.py MODEL OUT``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
WEIGHT_ATOL = 1e-4
METRIC_ATOL = 1e-3
LOSS_RTOL = 1e-4


# ----------------------------------------------------------------- helpers
def _launch(args: list[str], home: Path, nproc: int | None = None) -> None:
    """Run a script (``args[0]``) in one process, or under torchrun with ``nproc`` processes."""
    env = {
        **os.environ,
        "RRRA_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    launcher = (
        [sys.executable]
        if nproc is None
        else [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    )
    proc = subprocess.run([*launcher, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args[:1])} failed:\n{proc.stderr[-6000:]}"


def _one_and_two(script: str, flags: list[str], tmp_path: Path) -> tuple[Path, Path]:
    """The run folders of a one-process and a two-process run of the same command."""
    for name, nproc in (("one", None), ("two", 2)):
        _launch([str(REPO / "scripts" / script), *flags, "--run-id", "r"], tmp_path / name, nproc)
    return tmp_path / "one" / "runs" / "r", tmp_path / "two" / "runs" / "r"


def _tensors(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of every safetensors file under ``folder`` (both towers of a two-tower model)."""
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for f in sorted(folder.rglob("*.safetensors")):
        out.update({f"{f.relative_to(folder)}:{k}": v for k, v in load_file(str(f)).items()})
    return out


def _assert_same_weights(one: Path, two: Path, start: Path) -> None:
    a, b = _tensors(one), _tensors(two)
    s = {k.split(":", 1)[1]: v for k, v in _tensors(start).items()}  # each trained tower starts from the one model
    assert a and a.keys() == b.keys()
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    moved = max(float(np.abs(a[k] - s[k.split(":", 1)[1]]).max()) for k in a)
    print(f"{one.name}: max |one - two| = {diff:.2e}, max |one - start| = {moved:.2e}")
    assert diff <= WEIGHT_ATOL, f"weights differ by {diff:.2e}"
    assert moved > 10 * WEIGHT_ATOL, "training barely moved the weights: the comparison would prove nothing"


def _assert_close_metrics(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=METRIC_ATOL), k


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture()
def model_dir(tiny_model_dir: Path) -> Path:
    """The tiny model with dropout off (see the module docstring)."""
    cfg_path = tiny_model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg_path.write_text(json.dumps(cfg))
    return tiny_model_dir


SMALL = [
    "--dataset",
    "adi",
    "--train-split",
    "test",
    "--eval-split",
    "test",
    "--query-max-length",
    "16",
    "--doc-max-length",
    "32",
    "--encode-batch-size",
    "32",
    "--device",
    "cpu",
    "--lr",
    "1e-3",
]


# ----------------------------------------------------------------- the helpers themselves
def test_shards_and_gathers_keep_the_original_order(model_dir: Path, tmp_path: Path) -> None:
    _launch([__file__, str(model_dir), str(tmp_path)], tmp_path / "home", nproc=2)  # asserts run in the workers
    from rrra_core.retrieval.encoder import BiEncoder
    from rrra_core.retrieval.encoding import encode_texts

    rank0, rank1 = np.load(tmp_path / "rank0.npy"), np.load(tmp_path / "rank1.npy")
    assert np.array_equal(rank0, rank1)  # every rank holds the whole, same array
    # The same rows as one process encoding everything (threads may round differently).
    alone = encode_texts(BiEncoder.from_pretrained(model_dir), _worker_texts(), "doc", 32, batch_size=4, progress=False)
    np.testing.assert_allclose(rank0, alone, atol=1e-6)


def _worker_texts() -> list[str]:
    return [f"document {i} " + "word " * (i % 9) for i in range(23)]


def _worker(model_dir: str, out_dir: str) -> None:
    import torch

    from rrra_core.retrieval.encoder import BiEncoder
    from rrra_core.retrieval.encoding import encode_texts
    from rrra_core.runtime import distributed as dist

    dist.setup("cpu")
    rank = dist.get_rank()
    assert dist.get_world_size() == 2 and dist.is_main() == (rank == 0)
    items = list(range(7))  # 7 items: the shares are uneven
    assert dist.shard(items) == ([0, 1, 2, 3] if rank == 0 else [4, 5, 6])
    assert dist.shard(items, strided=True) == ([0, 2, 4, 6] if rank == 0 else [1, 3, 5])
    full = np.arange(21, dtype=np.float32).reshape(7, 3)
    for strided in (False, True):
        mine = full[np.asarray(dist.shard(items, strided=strided))]
        assert np.array_equal(dist.all_gather_array(mine, strided=strided), full), strided
    # The gathered batch carries gradient to this rank's rows only, in rank order.
    x = torch.full((rank + 1, 2), float(rank + 1), requires_grad=True)  # rank 0: 1 row, rank 1: 2 rows
    gathered = dist.all_gather_with_grad(x, [1, 2])
    assert gathered.tolist() == [[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]]
    (gathered * torch.arange(1.0, 4.0)[:, None]).sum().backward()
    assert x.grad.tolist() == ([[1.0, 1.0]] if rank == 0 else [[2.0, 2.0], [3.0, 3.0]])
    assert dist.broadcast_object({"from": rank}) == {"from": 0}
    assert dist.all_reduce_sum(rank + 1.0) == 3.0
    emb = encode_texts(BiEncoder.from_pretrained(model_dir), _worker_texts(), "doc", 32, batch_size=4, progress=False)
    np.save(Path(out_dir) / f"rank{rank}.npy", emb)
    dist.teardown()


# ----------------------------------------------------------------- the training phases
def test_phase1_two_processes_match_one(model_dir: Path, tmp_path: Path) -> None:
    # A global batch of 7 splits 4 + 3; separate towers; mined hard negatives; a checkpoint at step 2.
    flags = [*SMALL, "--model", str(model_dir), "--shared", "false", "--batch-size", "7", "--max-steps", "3",
             "--checkpoint-every", "2", "--hard-negatives", "mine", "--n-hard", "1", "--eval-k", "20",
             "--mine-top-k", "20", "--mine-n-neg", "4"]  # fmt: skip
    one, two = _one_and_two("train_phase1.py", flags, tmp_path)

    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())  # rank 1 wrote nothing extra
    _assert_same_weights(one / "model", two / "model", model_dir)
    ma, mb = json.loads((one / "metrics.json").read_text()), json.loads((two / "metrics.json").read_text())
    assert (ma["train"]["processes"], mb["train"]["processes"]) == (1, 2)
    assert ma["train"]["steps"] == mb["train"]["steps"] == 3
    _assert_close_metrics(ma["before"], mb["before"])
    _assert_close_metrics(ma["after"], mb["after"])
    la, lb = _log(one), _log(two)
    assert [r["n_docs"] for r in la] == [r["n_docs"] for r in lb]  # the same global batches
    assert [r["loss"] for r in lb] == pytest.approx([r["loss"] for r in la], rel=LOSS_RTOL)
    assert [r["grad_norm"] for r in lb] == pytest.approx([r["grad_norm"] for r in la], rel=LOSS_RTOL)
    assert (one / "negatives.jsonl").read_text() == (two / "negatives.jsonl").read_text()


def test_phase3_two_processes_match_one(model_dir: Path, tmp_path: Path) -> None:
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    enc = EncoderConfig(model=str(model_dir), query_max_length=16, doc_max_length=32, encode_batch_size=32)
    p2 = Phase2Config(
        dataset="adi",
        train_split="test",
        labels=LabelConfig(top_k=30, fp_rank_range=(30, 60)),
        fit=AdapterFitConfig(epochs=2, batch_size=64),
    )
    phase2 = create_run("phase2", phase2_config_dict(enc, p2))
    train_phase2(phase2, enc, p2)

    # Joint encoder + adapter training with RRRA sampling: hard and random negatives, reranked evaluation.
    flags = [*SMALL, "--model", str(model_dir), "--adapter", str(phase2.file("adapter")), "--sampler", "rrra",
             "--batch-size", "8", "--max-steps", "3", "--top-k", "30", "--eval-k", "30", "--n-hard", "2",
             "--n-random", "1"]  # fmt: skip
    one, two = _one_and_two("train_phase3.py", flags, tmp_path)

    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    _assert_same_weights(one / "model", two / "model", model_dir)
    _assert_same_weights(one / "adapter", two / "adapter", phase2.file("adapter"))
    ma, mb = json.loads((one / "metrics.json").read_text()), json.loads((two / "metrics.json").read_text())
    assert ma["train"]["joint_adapter"] and mb["train"]["joint_adapter"]
    assert set(ma["variants"]) == set(mb["variants"]) == {"no_rerank", "rerank"}
    for name in ma["variants"]:
        _assert_close_metrics(ma["variants"][name], mb["variants"][name])
    la, lb = _log(one), _log(two)
    for key in ("loss", "loss_contrastive", "adapter_ce", "adapter_norm", "grad_norm"):
        assert [r[key] for r in lb] == pytest.approx([r[key] for r in la], rel=LOSS_RTOL), key
    # The same negatives were sampled, and pushed as hard.
    import pyarrow.parquet as pq

    ga, gb = pq.read_table(one / "gradients.parquet").to_pandas(), pq.read_table(two / "gradients.parquet").to_pandas()
    assert ga["doc_id"].tolist() == gb["doc_id"].tolist() and len(ga) > 0
    np.testing.assert_allclose(gb["grad"], ga["grad"], rtol=LOSS_RTOL, atol=1e-6)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])


def test_ddp_buffer_sync_keyword_fits_the_installed_torch() -> None:
    import torch

    from rrra_core.runtime.distributed import no_forward_buffer_sync

    class Old:  # torch before 2.13
        def __init__(self, module, device_ids=None, broadcast_buffers=True, find_unused_parameters=False): ...

    class New:
        def __init__(
            self,
            module,
            device_ids=None,
            broadcast_buffers=None,
            find_unused_parameters=False,
            forward_sync_buffers=None,
        ): ...

    assert no_forward_buffer_sync(Old) == {"broadcast_buffers": False}
    assert no_forward_buffer_sync(New) == {"forward_sync_buffers": False}
    assert len(no_forward_buffer_sync(torch.nn.parallel.DistributedDataParallel)) == 1
