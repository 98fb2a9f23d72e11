"""Shared test configuration: fixed seeds, CPU only, no network."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

# No test may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fixed_seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
