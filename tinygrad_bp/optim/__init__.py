"""Optimizers that update parameters from their ``.grad``, and learning-rate schedules.

Each update rule matches its ``torch.optim`` namesake step for step.
"""

from __future__ import annotations

from tinygrad_bp.optim import lr_scheduler
from tinygrad_bp.optim.adam import Adam, AdamW
from tinygrad_bp.optim.optimizer import Optimizer
from tinygrad_bp.optim.rmsprop import RMSprop
from tinygrad_bp.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
