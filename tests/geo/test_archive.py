"""predict_rasters: many scenes, two gloo ranks, resume after a kill, the marker rule."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import geofm.geo.archive as archive
from geofm.geo import predict_raster, predict_rasters

from .conftest import FakeTqdm, write_scene

KW: dict[str, Any] = {"tile": 16, "overlap": 4, "batch_size": 8, "progress": False}


def conv_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)
    ).eval()


class Calls:
    """Replaces archive.predict_raster: records each source, then predicts."""

    def __init__(self) -> None:
        self.sources: list[str] = []

    def __call__(self, model: nn.Module, src: Any, dst: Any, **kwargs: Any) -> Path:
        self.sources.append(Path(src).name)
        return predict_raster(model, src, dst, **kwargs)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorder = Calls()
    monkeypatch.setattr(archive, "predict_raster", recorder)
    return recorder


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# -- one process ------------------------------------------------------------------------


def test_every_scene_is_predicted_like_predict_raster(
    scenes: list[Path], tmp_path: Path, calls: Calls
) -> None:
    out = tmp_path / "out" / "nested"  # created
    outputs = predict_rasters(conv_net(), str(scenes[0].parent / "s*.tif"), out, **KW)
    assert outputs == [out / f"s{k}.tif" for k in range(4)]
    assert calls.sources == [f"s{k}.tif" for k in range(4)]
    for src, dst in zip(scenes, outputs, strict=True):
        ref = predict_raster(conv_net(), src, tmp_path / "ref.tif", overwrite=True, **KW)
        assert dst.read_bytes() == ref.read_bytes()
        marker = json.loads(dst.with_name(dst.name + ".geofm.json").read_text())
        assert marker["output"] == [*stamp(dst)[:1], dst.stat().st_size, stamp(dst)[1]]
        assert marker["arguments"]["overlap"] == 4
        assert marker["model"] == "torch.nn.modules.container.Sequential"


def test_a_rerun_skips_finished_scenes_and_predicts_missing_ones(
    scenes: list[Path], tmp_path: Path, calls: Calls
) -> None:
    out = tmp_path / "out"
    predict_rasters(conv_net(), scenes[:2], out, **KW)
    before = {p.name: stamp(p) for p in out.glob("*.tif")}
    calls.sources.clear()
    predict_rasters(conv_net(), scenes, out, **KW)
    assert calls.sources == ["s2.tif", "s3.tif"]
    assert {n: stamp(out / n) for n in before} == before
    calls.sources.clear()
    predict_rasters(conv_net(), scenes, out, overwrite=True, **KW)
    assert calls.sources == [f"s{k}.tif" for k in range(4)]
    assert all(stamp(out / n) != before[n] for n in before)


def test_changed_model_arguments_or_source_are_refused_not_skipped(
    scenes: list[Path], tmp_path: Path, calls: Calls
) -> None:
    out = tmp_path / "out"
    predict_rasters(conv_net(), scenes[:2], out, **KW)
    calls.sources.clear()
    other_weights = conv_net(seed=1)
    for model, kwargs in (
        (other_weights, KW),
        (conv_net(), {**KW, "overlap": 6}),
        (conv_net(), {**KW, "precision": "bf16"}),
    ):
        with pytest.raises(FileExistsError, match="2 existing output.*another model or other"):
            predict_rasters(model, scenes[:2], out, **kwargs)
    os.utime(scenes[1], ns=(1, 1))
    with pytest.raises(FileExistsError, match="s1.tif' was predicted from another version"):
        predict_rasters(conv_net(), scenes[:2], out, **KW)
    assert calls.sources == []  # refused before any work
    predict_rasters(other_weights, scenes[:2], out, overwrite=True, **KW)
    assert calls.sources == ["s0.tif", "s1.tif"]


def test_outputs_without_marker_or_modified_are_refused(scenes: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "s0.tif").write_bytes(b"someone else's file")
    with pytest.raises(FileExistsError, match="s0.tif' exists without a predict_rasters marker"):
        predict_rasters(conv_net(), scenes[:1], out, **KW)
    (out / "s0.tif").unlink()
    predict_rasters(conv_net(), scenes[:1], out, **KW)
    (out / "s0.tif").write_bytes((out / "s0.tif").read_bytes() + b"!")
    with pytest.raises(FileExistsError, match="was modified after predict_rasters wrote it"):
        predict_rasters(conv_net(), scenes[:1], out, **KW)


def test_pending_markers_resume_the_right_way(
    scenes: list[Path], tmp_path: Path, calls: Calls
) -> None:
    out = tmp_path / "out"
    predict_rasters(conv_net(), scenes[:2], out, **KW)
    s0, s1 = out / "s0.tif", out / "s1.tif"
    for dst, replaces in ((s0, None), (s1, archive._identity(s1))):
        marker = dst.with_name(dst.name + ".geofm.json")
        data = json.loads(marker.read_text())
        marker.write_text(json.dumps({**data, "output": None, "replaces": replaces}))
    calls.sources.clear()
    kept = stamp(s0)
    predict_rasters(conv_net(), scenes[:2], out, **KW)
    # s0: killed after its output was renamed, before the marker was completed -> kept.
    # s1: killed during an overwrite, the old output is still there -> predicted again.
    assert calls.sources == ["s1.tif"]
    assert stamp(s0) == kept
    assert json.loads((out / "s0.tif.geofm.json").read_text())["output"] is not None


def test_suffix_and_progress_bar(
    scenes: list[Path], tmp_path: Path, fake_tqdm: list[FakeTqdm]
) -> None:
    kwargs = {**KW, "progress": True}
    outputs = predict_rasters(conv_net(), scenes[:2], tmp_path / "o", suffix="_map", **kwargs)
    assert [p.name for p in outputs] == ["s0_map.tif", "s1_map.tif"]
    # One bar over the scenes; the scenes' own tile bars stay hidden.
    [bar] = fake_tqdm
    assert (bar.total, bar.count, bar.unit, bar.desc, bar.closed) == (
        2,
        2,
        "scene",
        "predict_rasters",
        True,
    )


def test_argument_errors(scenes: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="got no sources"):
        predict_rasters(conv_net(), [], out, **KW)
    with pytest.raises(FileNotFoundError, match="1 source.*missing.tif"):
        predict_rasters(conv_net(), [scenes[0], tmp_path / "missing.tif"], out, **KW)
    with pytest.raises(FileNotFoundError, match="matches no file"):
        predict_rasters(conv_net(), str(tmp_path / "*.jp2"), out, **KW)
    other = tmp_path / "other"
    other.mkdir()
    twin = write_scene(other / "s0.tif", seed=9)
    with pytest.raises(ValueError, match="would both be written to"):
        predict_rasters(conv_net(), [scenes[0], twin], out, **KW)
    with pytest.raises(ValueError, match="is its source"):
        predict_rasters(conv_net(), [scenes[0]], scenes[0].parent, **KW)
    with pytest.raises(ValueError, match="training mode"):
        predict_rasters(conv_net().train(), [scenes[0]], out, **KW)
    with pytest.raises(ValueError, match="large_scene_pixels must be >= 1"):
        predict_rasters(conv_net(), [scenes[0]], out, large_scene_pixels=0, **KW)
    with pytest.raises(ValueError, match="overlap must be in"):
        predict_rasters(conv_net(), [scenes[0]], out, **{**KW, "overlap": 12})


def test_predict_options_are_the_scene_arguments_of_predict_raster() -> None:
    import inspect
    import typing

    from geofm.geo import PredictOptions

    own = {"model", "src", "dst", "progress", "overwrite", "shard_across_ranks"}
    scene_args = [n for n in inspect.signature(predict_raster).parameters if n not in own]
    assert list(PredictOptions.__annotations__) == scene_args
    assert list(typing.get_type_hints(PredictOptions)) == scene_args  # resolvable at run time


def test_omitted_options_fingerprint_like_their_defaults(
    scenes: list[Path], tmp_path: Path, calls: Calls
) -> None:
    out = tmp_path / "out"
    predict_rasters(conv_net(), scenes[:1], out, **KW)
    marker = json.loads((out / "s0.tif.geofm.json").read_text())
    assert marker["arguments"]["blend"] == "cosine"  # predict_raster's default, recorded
    assert marker["arguments"]["output"] == "class"
    assert "device" not in marker["arguments"]
    calls.sources.clear()
    explicit = {**KW, "blend": "cosine", "output": "class", "precision": "fp32", "device": "cpu"}
    predict_rasters(conv_net(), scenes[:1], out, **explicit)  # the same arguments: resumed
    assert calls.sources == []
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['tiles'\]"):
        predict_rasters(conv_net(), scenes[:1], out, tiles=16)  # type: ignore[call-arg]


def test_assignment_balances_pixels_largest_first() -> None:
    # 9 -> r0, 5 -> r1, 4 -> r1 (5 < 9), 4 -> r0 (tie 9 = 9: lowest rank), 1 -> r1 (9 < 13)
    assert archive._assign([5, 9, 1, 4, 4], 2) == [1, 0, 1, 1, 0]
    assert archive._assign([3, 3, 3], 3) == [0, 1, 2]


# -- two gloo ranks ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_worker(rank: int, world: int, port: int, sources: list[str], out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),  # a rank left waiting fails the test, not hangs it
    )
    log = Path(out) / f"calls{rank}.txt"

    def logged(model: nn.Module, src: Any, dst: Any, **kwargs: Any) -> Path:
        with log.open("a") as fh:
            fh.write(f"{Path(src).name} {kwargs['shard_across_ranks']}\n")
        return predict_raster(model, src, dst, **kwargs)

    def bar(total: int, *, unit: str, desc: str, caller: str) -> None:
        (Path(out) / f"bar{rank}.txt").write_text(f"{desc}: {total} {unit}s")

    setattr(archive, "predict_raster", logged)  # noqa: B010  (a spawned process: no monkeypatch)
    setattr(archive, "progress_bar", bar)  # noqa: B010
    try:
        # s3 (1248 px) and big (4545 px) are large; the default threshold would be 4481.
        predict_rasters(
            conv_net(), sources, out, large_scene_pixels=1200, **{**KW, "progress": True}
        )
        # Rank 0 cannot plan (a source that is not a raster): every rank raises.
        broken = Path(out).parent / "broken.tif"
        try:
            predict_rasters(conv_net(), [*sources[:1], broken], Path(out) / "again", **KW)
        except Exception as err:
            (Path(out) / f"error{rank}.txt").write_text(f"{type(err).__name__}: {err}")

        # A scene fails on the rank predicting it: that rank raises its own error, the
        # other says another rank failed.
        def failing(model: nn.Module, src: Any, dst: Any, **kwargs: Any) -> Path:
            if Path(src).name == "s1.tif":
                raise RuntimeError("s1 broke")
            return predict_raster(model, src, dst, **kwargs)

        setattr(archive, "predict_raster", failing)  # noqa: B010
        try:
            predict_rasters(conv_net(), sources[:3], Path(out) / "third", **KW)
        except RuntimeError as err:
            (Path(out) / f"fail{rank}.txt").write_text(str(err))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_write_the_same_bytes_as_one(scenes: list[Path], tmp_path: Path) -> None:
    big = write_scene(scenes[0].parent / "big.tif", seed=7, height=101, width=45)  # 4545 px
    sources = [str(p) for p in [*scenes, big]]
    one, two = tmp_path / "one", tmp_path / "two"
    expected = predict_rasters(conv_net(), sources, one, large_scene_pixels=1200, **KW)
    two.mkdir()
    (tmp_path / "broken.tif").write_bytes(b"not a raster")
    mp.spawn(  # type: ignore[attr-defined,no-untyped-call]
        _rank_worker, args=(2, _free_port(), sources, str(two)), nprocs=2, join=True
    )
    for path in expected:
        assert (two / path.name).read_bytes() == path.read_bytes(), path.name
        # One complete marker per output, whichever rank wrote it.
        marker = json.loads((two / f"{path.name}.geofm.json").read_text())
        assert marker["output"] == archive._identity(two / path.name), path.name
    logs = [(two / f"calls{r}.txt").read_text().split("\n")[:-1] for r in (0, 1)]
    for lines in logs:  # the large scenes by both ranks together, first, in source order
        assert lines[:2] == ["s3.tif True", "big.tif True"]
    mine = [{line.split()[0] for line in lines[2:]} for lines in logs]
    assert all(line.endswith("False") for lines in logs for line in lines[2:])
    assert mine[0] and mine[1] and not mine[0] & mine[1]
    assert mine[0] | mine[1] == {f"s{k}.tif" for k in range(3)}
    # Only rank 0 shows a bar: the two large scenes and its own.
    assert (two / "bar0.txt").read_text() == (
        f"predict_rasters (rank 0 of 2): {2 + len(mine[0])} scenes"
    )
    assert not (two / "bar1.txt").exists()
    error0 = (two / "error0.txt").read_text()
    assert error0.startswith("RasterioIOError: ") and "broken.tif" in error0
    assert (
        two / "error1.txt"
    ).read_text() == f"RuntimeError: predict_rasters failed on rank 0: {error0}"
    assert not (two / "again").exists() or not list((two / "again").glob("*.tif"))
    fails = [(two / f"fail{r}.txt").read_text() for r in (0, 1)]
    failed = fails.index("s1 broke")
    assert fails[1 - failed] == (
        f"predict_rasters failed on another rank (this is rank {1 - failed} of 2); see that "
        "rank's error. Finished outputs are kept: rerun to resume."
    )


# -- a run killed mid-archive resumes ------------------------------------------------------

SCRIPT = """
import sys, time
from pathlib import Path
import torch
from torch import nn
import geofm.geo.archive as archive

class Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)
        )

    def forward(self, x):
        time.sleep(float(sys.argv[3]))
        return self.net(x)

original = archive.predict_raster

def logged(model, src, dst, **kwargs):
    with open(sys.argv[4], "a") as fh:
        fh.write(Path(src).name + "\\n")
    return original(model, src, dst, **kwargs)

archive.predict_raster = logged
archive.predict_rasters(
    Slow().eval(), sys.argv[1], sys.argv[2], tile=16, overlap=4, batch_size=8, progress=False
)
"""


def test_a_killed_run_resumes_without_redoing_finished_scenes(
    scenes: list[Path], tmp_path: Path
) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out, pattern = tmp_path / "out", str(scenes[0].parent / "s*.tif")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(delay: float, log: str) -> list[str]:
        return [sys.executable, str(script), pattern, str(out), str(delay), str(tmp_path / log)]

    killed = subprocess.Popen(command(0.3, "killed.txt"), env=env)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.tif")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    finished = {p.name: stamp(p) for p in out.glob("*.tif")}
    assert 1 <= len(finished) < 4, finished
    subprocess.run(command(0.0, "resumed.txt"), env=env, check=True)
    redone = (tmp_path / "resumed.txt").read_text().split()
    assert sorted(redone) == sorted({f"s{k}.tif" for k in range(4)} - set(finished))
    assert {n: stamp(out / n) for n in finished} == finished
    assert not [p for p in out.iterdir() if p.name.endswith(".geofm-partial")]

    class Same(nn.Module):  # the script's model, without the delay
        def __init__(self) -> None:
            super().__init__()
            self.net = conv_net()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)  # type: ignore[no-any-return]

    for src in scenes:
        ref = predict_raster(Same().eval(), src, tmp_path / "ref.tif", overwrite=True, **KW)
        assert (out / src.name).read_bytes() == ref.read_bytes(), src.name
