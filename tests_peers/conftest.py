"""Shared configuration of the peer-test ports: fixed seeds, CPU, no network.

``tests_peers/`` holds the peers' own tests (lightly, PEFT, timm, torchgeo) ported to
call geofm. It is not in ``testpaths``, so plain ``pytest`` and CI do not collect it;
run it with ``nox -s peers`` or ``pytest tests_peers -q -rfEs``. Each file's module
docstring names the upstream repository, commit and tests it follows, and every
adaptation. Results and the list of intended differences: ``reports/peer-tests.md``.
"""

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
