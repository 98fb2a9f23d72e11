"""geofm._dist helpers that need no process group: one process, world size 1."""

from __future__ import annotations

import pytest

from geofm import _dist


def test_raise_rank_failure_reraises_this_ranks_error_first() -> None:
    own = KeyError("tile 3")
    with pytest.raises(KeyError) as info:
        _dist.raise_rank_failure(own, False, caller="predict_raster", hint="Rerun.")
    assert info.value is own  # the very exception, not a wrapper


def test_raise_rank_failure_names_the_caller_rank_and_hint() -> None:
    with pytest.raises(RuntimeError) as info:
        _dist.raise_rank_failure(None, False, caller="predict_rasters", hint="Rerun to resume.")
    assert str(info.value) == (
        "predict_rasters failed on another rank (this is rank 0 of 1); see that rank's error. "
        "Rerun to resume."
    )
    with pytest.raises(RuntimeError, match=r"see that rank's error\.$"):
        _dist.raise_rank_failure(None, False, caller="predict_raster", hint="")


def test_raise_rank_failure_is_silent_when_every_rank_succeeded() -> None:
    assert _dist.raise_rank_failure(None, True, caller="predict_raster", hint="x") is None
