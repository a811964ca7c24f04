"""Training loops (phase 1: bi-encoder) with schedules and resumable checkpoints."""

from __future__ import annotations

from rrra_core.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from rrra_core.training.phase1 import TrainConfig, train_phase1
from rrra_core.training.schedule import lr_at

__all__ = ["TrainConfig", "train_phase1", "lr_at", "save_checkpoint", "load_checkpoint", "has_checkpoint"]
