"""Which way of encoding a corpus is fastest on this CPU while keeping quality (issue 27 item 3).

Every option embeds the same fixed sample of passages at the same max length and
batch size, under the same total thread budget. The options take turns in
rotating order over chunks of the sample (A B C, B C A, ...), each encoding every
chunk once per pass, so drift in a shared machine's load hits them alike; speed
is reported against sentence-transformers' fp32 ``encode`` as a per-chunk ratio
(median, min, max) and over the whole sample.

Quality is read twice: the cosine of each option's vectors to the build's
default (our fp32 ``encode_texts``) over the sample, and, for each option whose
mean cosine clears ``min_cosine``, the SciFact test nDCG@10 of zero-shot
retrieval with corpus and queries encoded that way, against fp32's.

Options (names as in the results):
    st-fp32              sentence-transformers ``encode``, fp32 (the speed baseline)
    fp32                 ours: tokens sorted by length, padded per batch (the build's default)
    fp32-unsorted        ours without the length sort (what sorting saves in padding)
    bf16                 ours under bfloat16 autocast (``precision="bf16"``)
    int8                 ours with ``quantize_dynamic`` int8 weights per output channel, every Linear
    int8-keep-ffn-out    the same, each layer's feed-forward output projection kept fp32
    onnx-fp32            ONNX Runtime, the exported transformer in fp32
    onnx-int8            ONNX Runtime after ``onnxruntime.quantization.quantize_dynamic``, per channel
    onnx-int8-keep-ffn-out  the same, feed-forward output MatMuls kept fp32
    2x1:<option>         two worker processes with one thread each, each encoding half of every chunk

The ONNX options need ``onnx`` and ``onnxruntime`` (not runtime requirements of
the project); without them they are left out of the result with a reason.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrra_core.data import doc_text, load_dataset
from rrra_core.retrieval.encoder import BiEncoder, resolve_model_dir
from rrra_core.retrieval.encoding import encode_texts
from rrra_core.retrieval.evaluation import evaluate
from rrra_core.retrieval.index import DenseIndex
from rrra_core.speed.measure import alternating_orders, load_average, summarize

__all__ = [
    "EncodeOptionsBench",
    "OPTIONS",
    "bench_encode_options",
    "build_option",
    "export_onnx",
    "quantize_int8",
    "render_encode_options",
    "summarize_options",
]

ST = "st-fp32"
REFERENCE = "fp32"
OPTIONS = (
    ST,
    "fp32",
    "fp32-unsorted",
    "bf16",
    "int8",
    "int8-keep-ffn-out",
    "onnx-fp32",
    "onnx-int8",
    "onnx-int8-keep-ffn-out",
    "2x1:fp32",
    "2x1:bf16",
    "2x1:onnx-int8",
)
#: Options the build can run, and the setting that selects each (``EncoderConfig.precision``, ``--precision``).
BUILD_SETTINGS = {
    "fp32": "precision fp32 (the default)",
    "bf16": "precision bf16 (or auto, on a CPU with native bf16)",
}
#: Two-process options the build runs only where a driver runs under torchrun (phases 1 and 3 split corpus
#: encoding over their processes): not counted as the build's option in the summary.
TORCHRUN_SETTINGS = {
    f"2x1:{p}": f"OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 scripts/train_phase1.py (or 3) --precision {p}"
    for p in ("fp32", "bf16")
}
_FFN_OUT = re.compile(r"layer\.\d+\.output\.dense")  # BERT's feed-forward down-projection (not attention.output)
Encode = Callable[[list[str], int], np.ndarray]


@dataclass(frozen=True)
class EncodeOptionsBench:
    """What the encode-options benchmark runs (``scripts/bench_encode_options.py`` flags in brackets)."""

    model: str = "minilm"  # encoder folder or "minilm" [--model]
    dataset: str = "scifact"  # its test split: the passage sample and the nDCG@10 [--dataset]
    docs: int = 512  # passages, a fixed random sample (seed 0) of the corpus [--docs]
    max_length: int = 128  # max word pieces per passage when timing [--max-length]
    batch_size: int = 64  # every option, as the build's encode_batch_size [--batch-size]
    chunk: int = 128  # passages per round; each option encodes each chunk once per pass [--chunk]
    passes: int = 2  # passes over the sample [--passes]
    threads: int = 2  # total threads for every option [--threads]
    options: tuple[str, ...] = OPTIONS  # [--options]
    min_cosine: float = 0.99  # mean cosine to fp32 an option needs [--min-cosine]
    max_ndcg_drop: float = 0.005  # largest nDCG@10 change from fp32 an option may show [--max-ndcg-drop]
    quality: bool = True  # run the nDCG@10 part [--no-quality]
    quality_doc_length: int = 128  # doc max length for the nDCG@10 part [--quality-doc-length]
    query_max_length: int = 64  # the build's query max length [--query-max-length]
    work_dir: str = ""  # where the ONNX files go (default: a temporary folder) [--work-dir]
    notes: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ options
def quantize_int8(model: torch.nn.Module, keep: Sequence[str] = ()) -> torch.nn.Module:
    """A copy of ``model`` whose Linear layers compute in int8 (CPU), weights scaled per output channel.

    Activations are quantised per batch on the fly (dynamic quantisation, no
    calibration data). Layers whose qualified name matches a regex in ``keep``
    stay fp32. Per-channel scales matter: one scale per weight matrix (torch's
    default) left MiniLM's vectors at a mean cosine of only 0.93 to fp32 in an earlier try.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not any(re.search(k, name) for k in keep)
    }
    with warnings.catch_warnings():  # torch.ao's notice that eager quantisation is moving to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model.eval(), dict.fromkeys(names, per_channel_dynamic_qconfig), inplace=False)


def _ours(encoder: BiEncoder, precision: str, batch_size: int) -> Encode:
    return lambda texts, n: encode_texts(encoder, texts, "doc", n, batch_size, progress=False, precision=precision)


def _unsorted(encoder: BiEncoder, batch_size: int) -> Encode:
    """Our fp32 forward with batches in input order: each batch padded to its longest text."""

    def encode(texts: list[str], n: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                out.append(encoder.embed(texts[s : s + batch_size], "doc", n).numpy())
        return np.concatenate(out)

    return encode


def _st(model: str, batch_size: int) -> Encode:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(resolve_model_dir(model)), device="cpu")

    def encode(texts: list[str], n: int) -> np.ndarray:
        st.max_seq_length = n
        return st.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )

    return encode


def export_onnx(encoder: BiEncoder, path: Path) -> Path:
    """Write the doc tower's transformer (token ids -> last hidden states) as ONNX, dynamic batch and length."""

    class _Hidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):  # noqa: ANN201
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    batch = encoder.tokenize(["an example passage", "and a second, longer one to pad"], 16)
    axes = {k: {0: "batch", 1: "tokens"} for k in [*names, "hidden"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        _Hidden(encoder.tower("doc")).eval(),
        tuple(batch[k] for k in names),
        str(path),
        input_names=names,
        output_names=["hidden"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,  # the TorchScript exporter needs no onnxscript
    )
    return path


def _onnx_files(encoder: BiEncoder, folder: Path) -> dict[str, Path]:
    """The fp32 export and its two int8 quantisations, made once per folder."""
    import onnxruntime  # noqa: F401  (fail here, as an ImportError, when it is missing)

    files = {k: folder / f"{k}.onnx" for k in ("onnx-fp32", "onnx-int8", "onnx-int8-keep-ffn-out")}
    if all(f.is_file() for f in files.values()):
        return files
    logging.disable(logging.INFO)  # the quantiser reports every tensor it skips on the root logger
    try:
        _make_onnx_files(encoder, files)
    finally:
        logging.disable(logging.NOTSET)
    return files


def _make_onnx_files(encoder: BiEncoder, files: dict[str, Path]) -> None:
    from onnx import load as load_onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not files["onnx-fp32"].is_file():
        export_onnx(encoder, files["onnx-fp32"])
    if not files["onnx-int8"].is_file():
        quantize_dynamic(files["onnx-fp32"], files["onnx-int8"], weight_type=QuantType.QInt8, per_channel=True)
    if not files["onnx-int8-keep-ffn-out"].is_file():
        graph = load_onnx(str(files["onnx-fp32"])).graph
        keep = [n.name for n in graph.node if n.op_type == "MatMul" and re.search(r"layer\.\d+/output/dense", n.name)]
        quantize_dynamic(
            files["onnx-fp32"],
            files["onnx-int8-keep-ffn-out"],
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep,
        )


def _onnx(encoder: BiEncoder, path: Path, threads: int, batch_size: int) -> Encode:
    """ONNX Runtime over the same length-sorted, per-batch-padded batches as ours; mean pooling and L2 in numpy."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    tok = encoder.tokenizer
    names = [i.name for i in session.get_inputs()]

    def encode(texts: list[str], n: int) -> np.ndarray:
        enc = tok(texts, truncation=True, max_length=n)
        lengths = np.array([len(x) for x in enc["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            batch = tok.pad([{k: enc[k][i] for k in enc.keys()} for i in idx], return_tensors="np")
            hidden = session.run(None, {k: batch[k].astype(np.int64) for k in names})[0]  # (b, T, H)
            mask = batch["attention_mask"][..., None].astype(np.float32)  # (b, T, 1)
            pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)  # (b, H)
            out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    return encode


def build_option(name: str, model: str, threads: int, batch_size: int, work_dir: Path) -> Encode:
    """The encode function of one in-process option, run with ``threads`` torch/ORT threads."""
    torch.set_num_threads(threads)
    if name == ST:
        return _st(model, batch_size)
    encoder = BiEncoder.from_pretrained(model)
    if name == "fp32-unsorted":
        return _unsorted(encoder, batch_size)
    if name in ("fp32", "bf16"):
        return _ours(encoder, name, batch_size)
    if name in ("int8", "int8-keep-ffn-out"):
        keep = () if name == "int8" else (_FFN_OUT.pattern,)
        encoder.query_model = quantize_int8(encoder.query_model, keep=keep)
        return _ours(encoder, "fp32", batch_size)
    if name.startswith("onnx-"):
        return _onnx(encoder, _onnx_files(encoder, work_dir)[name], threads, batch_size)
    raise ValueError(f"unknown option {name!r}; expected one of {', '.join(OPTIONS)}")


# ------------------------------------------------------- worker processes
def _worker(conn: Any, name: str, model: str, batch_size: int, work_dir: str) -> None:
    encode = build_option(name, model, 1, batch_size, Path(work_dir))
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        conn.send(encode(*msg))


class _Workers:
    """``procs`` single-thread processes running one option; each call splits the texts between them."""

    def __init__(self, name: str, procs: int, model: str, batch_size: int, work_dir: Path, tokenizer: Any) -> None:
        ctx = mp.get_context("spawn")
        self.tokenizer, self.conns, self.procs = tokenizer, [], []
        for _ in range(procs):
            here, there = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(there, name, model, batch_size, str(work_dir)), daemon=True)
            p.start()
            self.conns.append(here)
            self.procs.append(p)
        for c in self.conns:
            c.recv()

    def __call__(self, texts: list[str], n: int) -> np.ndarray:
        # Deal the texts out in token-length order, so every process gets as much work and as little padding.
        lengths = [len(x) for x in self.tokenizer(texts, truncation=True, max_length=n)["input_ids"]]
        order = np.argsort(-np.array(lengths), kind="stable")
        shares = [order[i :: len(self.conns)] for i in range(len(self.conns))]
        for c, rows in zip(self.conns, shares):
            c.send(([texts[i] for i in rows], n))
        out = None
        for c, rows in zip(self.conns, shares):
            vecs = c.recv()
            out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32) if out is None else out
            out[rows] = vecs
        return out

    def close(self) -> None:
        for c in self.conns:
            c.send(None)
        for p in self.procs:
            p.join(timeout=10)


# ------------------------------------------------------------------ timing
def _sample(dataset: str, n: int) -> list[str]:
    data = load_dataset(dataset, "test")
    ids = sorted(data.corpus)
    pick = np.random.default_rng(0).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [doc_text(data.corpus[ids[i]]) for i in pick]


def _build_all(cfg: EncodeOptionsBench, work_dir: Path) -> tuple[dict[str, Encode], dict[str, str], list[_Workers]]:
    """Every option's encode function; options that cannot run here are returned with the reason instead."""
    built: dict[str, Encode] = {}
    skipped: dict[str, str] = {}
    workers: list[_Workers] = []
    tokenizer = BiEncoder.from_pretrained(cfg.model).tokenizer
    for name in cfg.options:
        try:
            if name.startswith("2x1:"):
                base = name.split(":", 1)[1]
                if base.startswith("onnx-"):
                    build_option(base, cfg.model, 1, cfg.batch_size, work_dir)  # export once, before the workers
                w = _Workers(base, 2, cfg.model, cfg.batch_size, work_dir, tokenizer)
                workers.append(w)
                built[name] = w
            else:
                built[name] = build_option(name, cfg.model, cfg.threads, cfg.batch_size, work_dir)
        except ImportError as err:
            skipped[name] = f"not installed: {err.name}"
    torch.set_num_threads(cfg.threads)
    return built, skipped, workers


def _time_options(
    built: dict[str, Encode], texts: list[str], cfg: EncodeOptionsBench
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per option, per-round speed ratios against sentence-transformers, and each option's vectors."""
    names = list(built)
    for name in names:  # warm-up: kernel choice, weight casts, allocator
        built[name](texts[: cfg.batch_size], cfg.max_length)
    chunks = [list(range(s, min(s + cfg.chunk, len(texts)))) for s in range(0, len(texts), cfg.chunk)]
    rounds = [c for _ in range(cfg.passes) for c in chunks]
    seconds = dict.fromkeys(names, 0.0)
    ratios: dict[str, list[float]] = {n: [] for n in names}
    emb = {n: np.zeros((len(texts), 384), dtype=np.float32) for n in names}
    for r, (order, rows) in enumerate(zip(alternating_orders(names, len(rounds)), rounds)):
        chunk = [texts[i] for i in rows]
        took = {}
        for name in order:
            t0 = time.perf_counter()
            vecs = built[name](chunk, cfg.max_length)
            took[name] = time.perf_counter() - t0
            if emb[name].shape[1] != vecs.shape[1]:
                emb[name] = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            emb[name][rows] = vecs
            seconds[name] += took[name]
        for name in names:
            ratios[name].append(took[ST] / took[name] if ST in took else float("nan"))
        line = ", ".join(f"{n} {len(rows) / took[n]:.1f}/s" for n in names)
        print(f"round {r + 1}/{len(rounds)} (load {load_average()[0]}): {line}", file=sys.stderr, flush=True)
    return seconds, ratios, emb


# ----------------------------------------------------------------- quality
def _ndcg(encode_docs: Encode, encode_queries: Encode, cfg: EncodeOptionsBench, data: Any) -> tuple[float, float]:
    """SciFact test nDCG@10 with corpus and queries encoded by one option; and the corpus encoding's seconds."""
    ids = list(data.corpus)
    t0 = time.perf_counter()
    docs = encode_docs([doc_text(data.corpus[i]) for i in ids], cfg.quality_doc_length)
    took = time.perf_counter() - t0
    qids = list(data.queries)
    queries = encode_queries([data.queries[q] for q in qids], cfg.query_max_length)
    run = DenseIndex.build(docs, ids, kind="flat").search_run(qids, queries, 100)
    return float(evaluate(data.qrels, run, ["nDCG@10"])["nDCG@10"]), took


def _quality(
    built: dict[str, Encode], cosine: dict[str, dict[str, float]], cfg: EncodeOptionsBench, work_dir: Path
) -> dict[str, dict[str, Any]]:
    """nDCG@10 of fp32 and of every in-process option whose mean cosine clears the bar (queries encoded alike).

    Each option encodes the corpus in two single-thread processes (its ``2x1:`` form), the quicker way on a
    busy machine; the vectors are the option's own arithmetic at one thread.
    """
    data = load_dataset(cfg.dataset, "test")
    tokenizer = BiEncoder.from_pretrained(cfg.model).tokenizer
    out: dict[str, dict[str, Any]] = {}
    for name in [REFERENCE, *(n for n in built if n not in (REFERENCE, ST))]:
        if name.startswith("2x1:") or name == "fp32-unsorted":
            base = name.split(":", 1)[1] if name.startswith("2x1:") else REFERENCE
            out[name] = {"same_arithmetic_as": base}
            continue
        if cosine[name]["mean"] < cfg.min_cosine:
            out[name] = {"skipped": f"mean cosine {cosine[name]['mean']:.4f} < {cfg.min_cosine}"}
            continue
        if name != REFERENCE and cosine[name]["min"] >= 0.99999:
            out[name] = {"same_arithmetic_as": REFERENCE, "why": "every vector within 1e-5 cosine of fp32's"}
            continue
        workers = _Workers(name, 2, cfg.model, cfg.batch_size, work_dir, tokenizer)
        try:
            ndcg, took = _ndcg(workers, workers, cfg, data)
        finally:
            workers.close()
        out[name] = {"ndcg@10": round(ndcg, 4), "corpus_seconds": round(took, 1), "load_after": load_average()}
        print(f"nDCG@10 {name}: {ndcg:.4f} (corpus {took:.0f} s)", file=sys.stderr, flush=True)
    ref = out[REFERENCE]["ndcg@10"]
    for row in out.values():
        if "ndcg@10" in row:
            row["delta_vs_fp32"] = round(row["ndcg@10"] - ref, 4)
    for row in out.values():
        base = row.get("same_arithmetic_as")
        if base and "ndcg@10" in out.get(base, {}):
            row["delta_vs_fp32"] = out[base]["delta_vs_fp32"]
    return out


# ------------------------------------------------------------------- whole
def _admissible(name: str, row: dict[str, Any], cfg: EncodeOptionsBench) -> bool:
    """Mean cosine over the bar and nDCG@10 within it (on cosine alone when the nDCG part was not run)."""
    if name == ST or row["cosine_to_fp32"]["mean"] < cfg.min_cosine:
        return False
    if not cfg.quality:
        return True
    delta = row["quality"].get("delta_vs_fp32")
    return delta is not None and abs(delta) <= cfg.max_ndcg_drop


def bench_encode_options(cfg: EncodeOptionsBench) -> dict[str, Any]:
    """Every option timed against sentence-transformers and checked against fp32; the best admissible one named."""
    texts = _sample(cfg.dataset, cfg.docs)
    with tempfile.TemporaryDirectory(prefix="rrra-onnx-") as tmp:
        work_dir = Path(cfg.work_dir) if cfg.work_dir else Path(tmp)
        built, skipped, workers = _build_all(cfg, work_dir)
        try:
            seconds, ratios, emb = _time_options(built, texts, cfg)
            ref = emb[REFERENCE]
            cosine = {}
            for name in built:
                c = (emb[name] * ref).sum(axis=1)
                cosine[name] = {"mean": round(float(c.mean()), 6), "min": round(float(c.min()), 6)}
            quality = _quality(built, cosine, cfg, work_dir) if cfg.quality else {}
        finally:
            for w in workers:
                w.close()
    tokenizer = BiEncoder.from_pretrained(cfg.model).tokenizer
    lengths = np.array([len(x) for x in tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]])
    rows = {}
    for name in built:
        rows[name] = {
            "seconds": round(seconds[name], 2),
            "docs_per_s": round(cfg.passes * len(texts) / seconds[name], 2),
            "throughput_vs_st": round(seconds[ST] / seconds[name], 3),
            "per_round_vs_st": summarize(ratios[name]),
            "cosine_to_fp32": cosine[name],
            "quality": quality.get(name, {}),
        }
        rows[name]["admissible"] = name == REFERENCE or _admissible(name, rows[name], cfg)
    result = {
        "settings": {
            "model": cfg.model,
            "texts": f"{cfg.dataset} corpus (test split's), {len(texts)} passages, fixed random sample (seed 0), "
            "title + ' ' + text",
            "max_length": cfg.max_length,
            "mean_tokens": round(float(lengths.mean()), 1),
            "truncated_share": round(float((lengths >= cfg.max_length).mean()), 3),
            "batch_size": cfg.batch_size,
            "chunk": cfg.chunk,
            "passes": cfg.passes,
            "threads": cfg.threads,
            "quality": f"{cfg.dataset} test nDCG@10, exact search, corpus at {cfg.quality_doc_length} word pieces, "
            f"queries at {cfg.query_max_length}, both encoded by the option",
            "bars": {"min_cosine": cfg.min_cosine, "max_ndcg_change": cfg.max_ndcg_drop},
        },
        "options": rows,
        "skipped": skipped,
    }
    return {**result, "summary": summarize_options(rows)}


def summarize_options(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fastest qualifying option the build can select, and the fastest qualifying one of all.

    ``encode_speedup_vs_st`` (read by ``scripts/bench_scale.py``) is the build's: what a corpus
    encoding run by this project gets with the setting named in ``build_setting``.
    """

    def speed(n: str) -> float:
        return rows[n]["per_round_vs_st"]["p50"]

    ok = [n for n in rows if rows[n]["admissible"] and n != ST]
    best_any = max(ok, key=speed)
    best = max((n for n in ok if n in BUILD_SETTINGS), key=speed)
    procs = [n for n in ok if n in TORCHRUN_SETTINGS]
    best_procs = max(procs, key=speed) if procs else None
    return {
        "best_option": best,
        "build_setting": BUILD_SETTINGS[best],
        "encode_speedup_vs_st": speed(best),
        "encode_speedup_vs_st_whole_sample": rows[best]["throughput_vs_st"],
        "cosine_to_fp32": rows[best]["cosine_to_fp32"]["mean"],
        "ndcg10_delta_vs_fp32": rows[best]["quality"].get("delta_vs_fp32"),
        "aim_2x_met": speed(best) >= 2.0,
        "best_option_of_all": best_any,
        "best_of_all_speedup_vs_st": speed(best_any),
        "best_of_all_cosine_to_fp32": rows[best_any]["cosine_to_fp32"]["mean"],
        "best_of_all_ndcg10_delta_vs_fp32": rows[best_any]["quality"].get("delta_vs_fp32"),
        "best_under_torchrun": best_procs,
        "best_under_torchrun_setting": TORCHRUN_SETTINGS.get(best_procs or ""),
        "best_under_torchrun_speedup_vs_st": speed(best_procs) if best_procs else None,
        "how": "speedup = median over rounds of sentence-transformers' seconds / the option's on the same chunk",
    }


# ------------------------------------------------------------------ render
def render_encode_options(r: dict[str, Any]) -> str:
    """The Markdown of a result, from its JSON alone."""
    from rrra_core.speed.render import header

    s = r["settings"]
    lines = header("Encoding options: speed against sentence-transformers fp32, quality against our fp32", r)
    lines += [
        f"Texts: {s['texts']}; max length {s['max_length']} (mean {s['mean_tokens']} tokens, "
        f"{s['truncated_share']:.0%} truncated); batch {s['batch_size']}; {s['threads']} threads in all for every "
        f"option (2x1: two processes of one thread). The options take turns in rotating order over chunks of "
        f"{s['chunk']} passages, {s['passes']} pass(es); speed is sentence-transformers' seconds over the option's "
        "on the same chunk, median [min, max] over the rounds.",
        "",
        f"Quality: cosine to our fp32 vectors over the sample (mean, min); {s['quality']}. "
        f"An option qualifies with mean cosine >= {s['bars']['min_cosine']} and nDCG@10 within "
        f"{s['bars']['max_ndcg_change']} of fp32's.",
        "",
        "| option | docs/s | vs sentence-transformers, per round p50 [min, max] | whole sample | cosine mean (min) "
        "| nDCG@10 | delta vs fp32 | qualifies |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, o in r["options"].items():
        q, pr = o["quality"], o["per_round_vs_st"]
        verdict = "baseline" if name == ST else "yes" if o["admissible"] else "no"
        ndcg = q.get("ndcg@10", q.get("skipped", f"= {q['same_arithmetic_as']}" if "same_arithmetic_as" in q else ""))
        delta = q.get("delta_vs_fp32")
        lines.append(
            f"| {name} | {o['docs_per_s']:.1f} | {pr['p50']:.2f}x [{pr['min']:.2f}, {pr['max']:.2f}] "
            f"| {o['throughput_vs_st']:.2f}x | {o['cosine_to_fp32']['mean']:.4f} ({o['cosine_to_fp32']['min']:.4f}) "
            f"| {ndcg} | {'' if delta is None else f'{delta:+.4f}'} | {verdict} |"
        )
    for name, why in r.get("skipped", {}).items():
        lines.append(f"| {name} | not run: {why} | | | | | | |")
    sm = r["summary"]
    lines += [
        "",
        f"**Fastest qualifying option the build can select: `{sm['best_option']}` ({sm['build_setting']}), "
        f"{sm['encode_speedup_vs_st']:.2f}x sentence-transformers fp32** (whole sample "
        f"{sm['encode_speedup_vs_st_whole_sample']:.2f}x), cosine {sm['cosine_to_fp32']:.4f}, nDCG@10 change "
        f"{sm['ndcg10_delta_vs_fp32']}. The 2x aim is {'met' if sm['aim_2x_met'] else 'not met'}. "
        f"Fastest qualifying option of all: `{sm['best_option_of_all']}`, {sm['best_of_all_speedup_vs_st']:.2f}x, "
        f"cosine {sm['best_of_all_cosine_to_fp32']:.4f}, nDCG@10 change {sm['best_of_all_ndcg10_delta_vs_fp32']}.",
        "",
    ]
    if sm.get("best_under_torchrun"):
        lines += [
            f"Where a driver runs under torchrun (phases 1 and 3): `{sm['best_under_torchrun']}`, "
            f"{sm['best_under_torchrun_speedup_vs_st']:.2f}x, with `{sm['best_under_torchrun_setting']}`.",
            "",
        ]
    return "\n".join([*lines, *r.get("notes_md", [])]) + "\n"
