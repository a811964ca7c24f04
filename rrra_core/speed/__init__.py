"""Speed benchmarks: the measurements behind ``scripts/bench_speed.py`` and the results files they write.

Modules:
    measure        measurement helpers: percentiles, recall@k, FLOP counts, the CPU's peak, memory, A/B orders
    results        a result headed by its command, machine and load; writing ``speed_<part>.json`` and ``.md``
    render         the Markdown of each part, from its JSON alone (no torch)
    encode         our encoding against sentence-transformers (``EncodeBench``, ``bench_encode``)
    encode_options every way of encoding tried on this CPU, speed and quality (``scripts/bench_encode_options.py``)
    latency        one query at a time on the serving path (``LatencyBench``, ``bench_latency``)
    cross_encoder  the cross-encoder the adapter rerank is priced against
    index_scale    exact, IVF and HNSW indexes at a million vectors (``IndexBench``, ``bench_index``)
    train_step     phase-1 and phase-3 training steps (``TrainBench``, ``bench_train``)
    timed_adapter  the adapter the latency and training benchmarks time

The benchmark modules are imported by name: each pulls in torch (and
sentence-transformers or FAISS), which re-rendering a result never needs.
"""

from __future__ import annotations

from rrra_core.speed.render import render
from rrra_core.speed.results import attach_notes, machine_info, measure_part, read_result, write_result

__all__ = ["render", "attach_notes", "machine_info", "measure_part", "read_result", "write_result"]
