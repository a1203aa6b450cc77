"""Seeds: independent sub-streams of one run seed, and seeding every global generator at once."""
from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(seed: int, *stream: int) -> int:
    """An independent 32-bit seed for sub-stream ``stream`` of ``seed`` (``seed + i`` would collide across runs)."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
