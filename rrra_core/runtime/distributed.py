"""Multi-process training under ``torchrun``: the process group, ranks, sharding and gathers.

``torchrun --nproc_per_node N`` starts N copies of a driver and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`setup` joins the process group (gloo on CPU, NCCL on CUDA) and pins the
process to the GPU of its local rank. When ``WORLD_SIZE`` is unset or 1 nothing
is initialised and every helper here is a no-op (``shard`` returns everything,
gathers and broadcasts return their input), so single-process code paths run
unchanged.

Two rules keep multi-process runs free of deadlocks:

- every rank makes the same collective calls in the same order, so a decision
  that depends on the file system (resume or not, cache hit or not) is taken
  by rank 0 and broadcast;
- only rank 0 writes run files; the other ranks wait for it at the next
  collective (a broadcast or :func:`barrier`).
"""

from __future__ import annotations

import datetime
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from rrra_core.runtime.device import resolve_device

if TYPE_CHECKING:  # for annotations only: this low-level module does not import runs at load time
    from rrra_core.runtime.runs import Run

__all__ = [
    "setup",
    "open_run_on_main",
    "teardown",
    "session",
    "is_distributed",
    "is_main",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "local_device",
    "barrier",
    "shard",
    "all_gather_array",
    "all_gather_with_grad",
    "broadcast_object",
    "broadcast_array",
    "all_reduce_sum",
    "wrap",
]

S = TypeVar("S", bound=Sequence)

# Ranks wait for each other while one encodes its shard of a corpus or rank 0
# saves a model; on a CPU a large shard takes far longer than torch's 30-minute default.
_TIMEOUT = datetime.timedelta(hours=3)


# ----------------------------------------------------------------- the group
def setup(device: str = "auto") -> torch.device:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; returns this process's device.

    The backend follows the device: NCCL when it resolves to CUDA (each process
    then owns ``cuda:LOCAL_RANK``), gloo otherwise.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dev = resolve_device(device)
        if dev.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # env:// reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://", timeout=_TIMEOUT)
    return local_device(device)


def teardown(wait: bool = True) -> None:
    """Leave the process group (after a barrier unless ``wait`` is false); no-op when not joined."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def session(device: str = "auto") -> Iterator[torch.device]:
    """``setup`` on entry, ``teardown`` on exit; yields this process's device.

    After an error the barrier is skipped: the other ranks may be blocked in a
    different collective, and torchrun stops them once this process exits.
    """
    dev = setup(device)
    try:
        yield dev
    except BaseException:
        teardown(wait=False)
        raise
    teardown()


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    """This process's index on its machine (which GPU it owns)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes run files and logs."""
    return get_rank() == 0


def local_device(name: str = "auto") -> torch.device:
    """:func:`resolve_device`, except that a distributed CUDA run uses ``cuda:LOCAL_RANK``."""
    dev = resolve_device(name)
    if dev.type == "cuda" and is_distributed():
        return torch.device("cuda", get_local_rank())
    return dev


def open_run_on_main(run: Run | None, create: Callable[[], Run]) -> Run:
    """The run folder every rank works in.

    Under torchrun every rank runs the driver; rank 0 alone creates the folder
    (``create()``, unless ``run`` is a resumed one) and broadcasts its path, and
    the other ranks quieten their logs so the log is written once.
    """
    from rrra_core.runtime.runs import Run  # at call time: runs is the higher-level module

    if not is_main():
        logging.getLogger().setLevel(logging.WARNING)
    if run is None and is_main():
        run = create()
    run = Run(broadcast_object(run.path if run is not None else None))
    if is_main():
        print(f"run folder: {run.path}", file=sys.stderr)
    return run


def barrier() -> None:
    """Wait until every rank gets here."""
    if is_distributed():
        dist.barrier()


def _comm_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo moves CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------- sharding
def _bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous block of ``n`` items; the first ``n % world`` ranks get one more."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def shard(items: S, strided: bool = False, rank: int | None = None) -> S:
    """This rank's share of ``items``: a contiguous block, or every ``world``-th item from ``rank``.

    ``rank`` asks for another rank's share (every rank can work out who holds
    what without communicating). :func:`all_gather_array` with the same
    ``strided`` puts the shares back in the original order.
    """
    world = get_world_size()
    rank = get_rank() if rank is None else rank
    if strided:
        return items[rank::world]
    lo, hi = _bounds(len(items), world, rank)
    return items[lo:hi]


def _gather_sizes(n: int) -> list[int]:
    size = torch.tensor([n], dtype=torch.long, device=_comm_device())
    sizes = [torch.zeros_like(size) for _ in range(get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def all_gather_array(local: np.ndarray, strided: bool = False) -> np.ndarray:
    """Every rank's ``local`` rows, reassembled in the order :func:`shard` took them apart.

    Shares may differ in length (rank 0 holds one more item when the count does
    not divide). Every rank gets the same array, bit for bit.
    """
    if not is_distributed():
        return local
    local = np.ascontiguousarray(local)
    sizes = _gather_sizes(local.shape[0])
    world, longest = len(sizes), max(sizes)
    if longest == 0:
        return local
    dev = _comm_device()
    buf = torch.zeros((longest, *local.shape[1:]), dtype=torch.from_numpy(local).dtype, device=dev)
    buf[: local.shape[0]] = torch.from_numpy(local).to(dev)
    parts = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(parts, buf)
    arrays = [p[:s].cpu().numpy() for p, s in zip(parts, sizes)]
    if not strided:
        return np.concatenate(arrays)
    total = sum(sizes)
    if any(s != len(range(r, total, world)) for r, s in enumerate(sizes)):
        raise ValueError(f"shares of sizes {sizes} are not a strided split of {total} items")
    out = np.empty((total, *local.shape[1:]), dtype=local.dtype)
    for r, a in enumerate(arrays):
        out[r::world] = a
    return out


def all_gather_with_grad(local: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Concatenate every rank's ``local`` rows (rank order); only this rank's rows carry gradient.

    ``counts[r]`` is rank r's row count, which every rank knows from the shared
    batch plan. ``dist.all_gather`` returns constants; putting this rank's own
    tensor back in its slot is what lets the loss's gradient reach the local
    encoder (the usual trick for in-batch negatives across GPUs: each rank
    back-propagates into its own rows, and DDP sums the ranks' contributions).
    """
    if not is_distributed():
        return local
    rank, longest = get_rank(), max(counts)
    if local.shape[0] != counts[rank]:
        raise ValueError(f"rank {rank} holds {local.shape[0]} rows but the plan says {counts[rank]}")
    if longest == 0:
        return local
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local.detach()
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    parts[rank] = local
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (a small picklable value: a flag, a path, a dict)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_array(arr: np.ndarray | None, src: int = 0) -> np.ndarray:
    """Rank ``src``'s array on every rank, sent as a tensor (other ranks may pass ``None``)."""
    if not is_distributed():
        return arr
    shape, dtype = broadcast_object((arr.shape, arr.dtype.str) if get_rank() == src else None, src)
    dev = _comm_device()
    if get_rank() == src:
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(dev)
    else:
        t = torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype=dtype)).dtype, device=dev)
    dist.broadcast(t, src)
    return t.cpu().numpy()


def all_reduce_sum(value: float) -> float:
    """The sum of ``value`` over ranks (for logging a quantity each rank holds a part of)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item())


# ----------------------------------------------------------------- models
def wrap(module: nn.Module, find_unused_parameters: bool) -> nn.Module:
    """``DistributedDataParallel(module)`` in a process group, the module itself otherwise.

    Buffers are synchronised once, at wrapping, not before every forward: ours
    are constants (position ids, the adapter's class weights).
    """
    if not is_distributed():
        return module
    dev = next(module.parameters()).device
    device_ids = [dev.index] if dev.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        module,
        device_ids=device_ids,
        find_unused_parameters=find_unused_parameters,
        **no_forward_buffer_sync(nn.parallel.DistributedDataParallel),
    )


def no_forward_buffer_sync(ddp_class: type) -> dict[str, bool]:
    """The DDP keyword that turns off the per-forward buffer broadcast, on this torch.

    torch 2.13 renamed ``broadcast_buffers`` to ``forward_sync_buffers`` (the old
    name warns); GPU images often carry an older torch that knows only the old one.
    """
    params = inspect.signature(ddp_class.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
