"""Distributed metrics: 2 gloo processes on CPU vs one process on the whole data.

One ``torch.multiprocessing.spawn`` runs every streaming metric (``_metrics_distributed_cases``)
on each rank's share of fixed data sets (uneven shares, and a rank without any update);
the single process feeds every batch to one metric. Expected: ``compute()`` on every rank
equals the single-process value (torchmetrics' ``sync_on_compute``), while
``sync_on_compute=False`` and the one-shot functions return the rank's own values.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import spawn

from geofm.metrics import ConfusionMatrix, R2Score, iou
from geofm.metrics._common import cat_over_ranks, sum_over_ranks

LOCAL_KEYS = {"cm_local", "iou_function_local", "r2_local"}


def _cases() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        return importlib.import_module("_metrics_distributed_cases")


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, torch.Tensor]]:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    out_dir = tmp_path_factory.mktemp("metrics_dist")
    with pytest.MonkeyPatch.context() as patch:
        # spawn hands sys.path to the children, which unpickle cases.worker by module name.
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        cases = importlib.import_module("_metrics_distributed_cases")
        spawn(  # type: ignore[no-untyped-call]
            cases.worker,
            args=(cases.free_port(), str(out_dir)),
            nprocs=cases.WORLD_SIZE,
            join=True,
        )
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.fixture(scope="module")
def single_process() -> dict[str, torch.Tensor]:
    cases = _cases()
    return dict(cases.run(cases.data(), 0, 1))


def test_every_synced_metric_equals_one_process_on_the_whole_data(
    rank_results: list[dict[str, torch.Tensor]], single_process: dict[str, torch.Tensor]
) -> None:
    synced = sorted(set(single_process) - LOCAL_KEYS)
    assert len(synced) >= 20
    for results in rank_results:
        assert set(results) == set(single_process)
        for key in synced:
            torch.testing.assert_close(
                results[key], single_process[key], rtol=1e-9, atol=1e-12, msg=key
            )


def test_the_ranks_really_hold_different_data(
    rank_results: list[dict[str, torch.Tensor]], single_process: dict[str, torch.Tensor]
) -> None:
    # Guards the test above: each rank's own counts are a strict part of the whole
    # (cm_local and cm_rank0_only both count the class-index predictions).
    whole = single_process["cm_rank0_only"]
    local = [r["cm_local"] for r in rank_results]
    assert all(0 < int(m.sum()) < int(whole.sum()) for m in local)
    torch.testing.assert_close(local[0] + local[1], whole)


def test_sync_off_and_one_shot_functions_stay_local(
    rank_results: list[dict[str, torch.Tensor]],
) -> None:
    cases = _cases()
    inputs = cases.data()
    n_seg, n_reg = len(inputs["target"]), len(inputs["reg_target"])
    for rank, results in enumerate(rank_results):
        rows = cases._batches(n_seg, rank, cases.WORLD_SIZE)
        cm = ConfusionMatrix(cases.C, ignore_index=255)
        for r in rows:
            cm.update(inputs["preds"][r], inputs["target"][r])
        torch.testing.assert_close(results["cm_local"], cm.compute())
        first = rows[0]
        preds, target = inputs["preds"][first], inputs["target"][first]
        want = iou(preds, target, num_classes=cases.C, ignore_index=255)
        torch.testing.assert_close(results["iou_function_local"], want)
        r2 = R2Score(num_outputs=cases.D, multioutput="raw_values")
        for r in cases._batches(n_reg, rank, cases.WORLD_SIZE):
            r2.update(inputs["reg_preds"][r], inputs["reg_target"][r])
        torch.testing.assert_close(results["r2_local"], r2.compute())


def test_collectives_are_the_identity_in_one_process() -> None:
    x = torch.arange(6).reshape(3, 2)
    assert sum_over_ranks(x) is x
    assert cat_over_ranks(x) is x
    assert sum_over_ranks(x, enabled=False) is x
