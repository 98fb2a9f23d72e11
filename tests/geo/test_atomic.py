"""Every geofm.geo writer: atomic, no-clobber, never over its input, normal permissions.

Includes the fault injection of issue 16: writers killed with SIGKILL in the middle
of a multi-megabyte output, and two writers racing for one destination.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from torch import nn

from geofm._atomic import (
    TEMP_SUFFIX,
    atomic_output,
    check_output,
    commit,
    create_temp,
    create_temp_dir,
    remove_path,
    remove_stale_temps,
)
from geofm.geo import predict_raster, read_raster, reproject_to_utm, tile_raster, write_tile_index

WriteRaster = Callable[..., Path]
REPO = Path(__file__).resolve().parents[2]

posix_only = pytest.mark.skipif(
    os.name != "posix", reason="SIGKILL, hard links and umask are POSIX"
)


def _temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if TEMP_SUFFIX in p.name)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _host() -> str:
    # The same reduction as geofm's temporary names (only [A-Za-z0-9-]).
    return "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:32]


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


# ---- the mechanism ---------------------------------------------------------------------


def test_temp_names_are_recognisable_and_respect_the_umask(tmp_path: Path, umask_027: None) -> None:
    tmp = create_temp(tmp_path / "map.tif")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(f".map.tif.{_host()}.{os.getpid()}.")
    assert tmp.name.endswith(TEMP_SUFFIX)
    assert tmp.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, not mkstemp's 0o600
    folder = create_temp_dir(tmp_path / "tiles")
    assert folder.is_dir() and folder.name.endswith(TEMP_SUFFIX)


def test_stale_temps_of_dead_processes_are_removed_and_nothing_else(tmp_path: Path) -> None:
    host, dead, alive = _host(), _dead_pid(), os.getpid()
    stale_file = tmp_path / f".a.tif.{host}.{dead}.0123abcd{TEMP_SUFFIX}"
    stale_part = tmp_path / f".a.tif.{host}.{dead}.0123abcd{TEMP_SUFFIX}.rank1"
    stale_dir = tmp_path / f".s_tiles.{host}.{dead}.89abcdef{TEMP_SUFFIX}"
    live = tmp_path / f".b.tif.{host}.{alive}.0123abcd{TEMP_SUFFIX}"
    other_host = tmp_path / f".c.tif.{host}x.{dead}.0123abcd{TEMP_SUFFIX}"
    foreign = [tmp_path / ".c.tif.abc123.partial", tmp_path / f"c.tif.{host}.{dead}.0123abcd"]
    for path in (stale_file, stale_part, live, other_host, *foreign):
        path.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "s_r000_c000.tif").write_bytes(b"x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_part, stale_dir])
    assert sorted(tmp_path.iterdir()) == sorted([live, other_host, *foreign])


def test_tile_raster_removes_a_killed_runs_staging_folder(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    out = tmp_path / "tiles"
    stale = out / f".src_tiles.{_host()}.{_dead_pid()}.0123abcd{TEMP_SUFFIX}"
    stale.mkdir(parents=True)
    (stale / "src_r000_c000.tif").write_bytes(b"half a tile")
    tiles = tile_raster(write_raster(np.ones((1, 16, 16), np.uint8)), size=8, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        t.path.name for t in tiles if t.path is not None
    )


def test_commit_never_replaces_without_overwrite(tmp_path: Path) -> None:
    dst = tmp_path / "out.txt"
    with atomic_output(dst, overwrite=False, caller="f") as tmp:
        tmp.write_text("first")
        dst.write_text("someone else")  # created while this run was writing
        with pytest.raises(FileExistsError, match="created by another writer while this run"):
            commit(tmp, dst, overwrite=False, caller="f")
        assert tmp.read_text() == "first"  # left for the caller (atomic_output removes it)
        dst.unlink()
    assert dst.read_text() == "first" and _temps(tmp_path) == []
    with (
        pytest.raises(FileExistsError, match="created by another writer"),
        atomic_output(dst, overwrite=False, caller="f") as tmp,
    ):
        tmp.write_text("second")
    assert dst.read_text() == "first" and _temps(tmp_path) == []
    with atomic_output(dst, overwrite=True, caller="f") as tmp:
        tmp.write_text("third")
    assert dst.read_text() == "third" and _temps(tmp_path) == []


@pytest.mark.parametrize("method", ["link", "placeholder"])
def test_no_replace_fallbacks_where_renameat2_or_links_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")  # no renameat2: link + unlink
    if method == "placeholder":

        def no_links(src: object, dst: object) -> None:
            raise PermissionError(1, "Operation not permitted")  # e.g. FAT, some FUSE mounts

        monkeypatch.setattr(os, "link", no_links)
    dst = tmp_path / "out.txt"
    with atomic_output(dst, overwrite=False, caller="f") as tmp:
        tmp.write_text("first")
    assert dst.read_text() == "first"
    with (
        pytest.raises(FileExistsError, match="created by another writer"),
        atomic_output(dst, overwrite=False, caller="f") as tmp,
    ):
        tmp.write_text("second")
    assert dst.read_text() == "first" and _temps(tmp_path) == []


# ---- an output that resolves to an input is refused by every writer ----------------------


def _aliases(src: Path) -> dict[str, Path]:
    """Other names of ``src``: the same path, ``sub/../``, a symlink and a hard link."""
    sub = src.parent / "sub"
    sub.mkdir(exist_ok=True)
    symlink, hardlink = src.with_name("symlink" + src.suffix), src.with_name("hard" + src.suffix)
    symlink.symlink_to(src.name)
    os.link(src, hardlink)
    return {"same": src, "dotdot": sub / ".." / src.name, "symlink": symlink, "hardlink": hardlink}


@posix_only
@pytest.mark.parametrize("alias", ["same", "dotdot", "symlink", "hardlink"])
def test_every_writer_refuses_an_output_that_is_its_input(
    tmp_path: Path, write_raster: WriteRaster, alias: str
) -> None:
    values = np.random.default_rng(0).random((1, 20, 30), dtype=np.float32)
    src = write_raster(values, crs="EPSG:4326", transform=from_origin(121.3, 31.3, 0.01, 0.01))
    dst = _aliases(src)[alias]
    before = src.read_bytes()
    with pytest.raises(ValueError, match="is its input .* would destroy the input"):
        predict_raster(nn.Identity().eval(), src, dst, tile=16, overlap=4, overwrite=True)
    with pytest.raises(ValueError, match="is its input .* would destroy the input"):
        reproject_to_utm(src, dst, overwrite=True)
    scene = write_raster(values, "scene.csv")  # a GeoTIFF named .csv, as its own index
    with pytest.raises(ValueError, match="is its input"):
        tile_raster(scene, size=8, index_path=_aliases(scene)[alias], overwrite=True)
    assert src.read_bytes() == before


@posix_only
def test_tile_raster_refuses_a_tile_name_that_links_to_the_source(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 16, 16), np.uint8))
    out = tmp_path / "tiles"
    out.mkdir()
    (out / "src_r000_c000.tif").symlink_to(src)
    before = src.read_bytes()
    with pytest.raises(ValueError, match="is its input"):
        tile_raster(src, size=8, out_dir=out, overwrite=True)
    assert src.read_bytes() == before


@posix_only
def test_write_tile_index_refuses_to_write_over_a_tile(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    tiles = tile_raster(write_raster(np.ones((1, 8, 8), np.uint8)), size=4, out_dir=tmp_path / "t")
    assert tiles[0].path is not None
    hard, soft = tmp_path / "t" / "hard.csv", tmp_path / "t" / "soft.json"
    os.link(tiles[0].path, hard)
    soft.symlink_to(tiles[1].path)  # type: ignore[arg-type]
    for index in (hard, soft):
        with pytest.raises(ValueError, match="is its input"):
            write_tile_index(tiles, index, overwrite=True)
    assert read_raster(tiles[0].path).mask.all()


def test_check_output_messages(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist. Create it first"):
        check_output(tmp_path / "no" / "x.tif", overwrite=False, caller="predict_raster")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output(tmp_path, overwrite=True, caller="predict_raster")
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(FileExistsError, match="of geofm.geo.predict_raster already exists"):
        check_output(tmp_path / "x.tif", overwrite=False, caller="predict_raster")


# ---- permissions ---------------------------------------------------------------------------


@posix_only
def test_outputs_get_the_umask_permissions(
    tmp_path: Path, write_raster: WriteRaster, umask_027: None
) -> None:
    src = write_raster(
        np.ones((1, 20, 24), np.float32),
        crs="EPSG:4326",
        transform=from_origin(121.3, 31.3, 0.01, 0.01),
    )
    outputs = [
        predict_raster(nn.Identity().eval(), src, tmp_path / "p.tif", tile=16, overlap=4),
        reproject_to_utm(src, tmp_path / "r.tif"),
        tmp_path / "i.geojson",
    ]
    tiles = tile_raster(src, size=8, out_dir=tmp_path / "t", index_path=outputs[-1])
    outputs += [t.path for t in tiles if t.path is not None]
    assert len(outputs) == 3 + 9
    assert {oct(p.stat().st_mode & 0o777) for p in outputs} == {oct(0o640)}


# ---- fault injection: SIGKILL mid-run, and two writers racing ----------------------------

_CHILD = r"""
import pathlib, sys, time
import torch
from torch import nn

torch.set_num_threads(1)
writer, src, dst, marker, go, gate, overwrite = sys.argv[1:8]
marker, go, gate = pathlib.Path(marker), pathlib.Path(go), int(gate)

def wait_here():
    marker.touch()
    while not go.exists():
        time.sleep(0.01)

if writer == "predict":
    from geofm.geo import predict_raster

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1  # call 1 is the shape probe, before the output exists
            if self.calls == gate:
                wait_here()
            return x

    predict_raster(Gate().eval(), src, dst, tile=256, overlap=32, batch_size=2,
                   output="regression", overwrite=overwrite == "1")
else:
    import rasterio.vrt
    from geofm.geo import reproject_to_utm

    class GatedVRT(rasterio.vrt.WarpedVRT):
        calls = 0

        def read(self, *args, **kwargs):
            type(self).calls += 1
            if type(self).calls == gate:
                wait_here()
            return super().read(*args, **kwargs)

    rasterio.vrt.WarpedVRT = GatedVRT  # reproject_to_utm imports it at call time
    reproject_to_utm(src, dst, overwrite=overwrite == "1")
print("finished")
"""


def _start(writer: str, src: Path, dst: Path, gate: int, *, overwrite: bool) -> tuple[Any, Path]:
    marker = dst.with_name(f"{dst.name}.{writer}.{os.urandom(3).hex()}.marker")
    go = dst.parent / "go"
    args = [writer, str(src), str(dst), str(marker), str(go), str(gate), str(int(overwrite))]
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, marker


def _wait_for(markers: list[Path], procs: list[Any], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(m.exists() for m in markers):
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"child exited early: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("children did not reach their gate in time")
        time.sleep(0.02)


def _big_scene(write_raster: WriteRaster, writer: str) -> Path:
    """A multi-megabyte raster: 3 x 1024 x 1024 float32 (12 MiB) or 1536^2 in lon/lat (9 MiB)."""
    rng = np.random.default_rng(0)
    if writer == "predict":
        return write_raster(rng.random((3, 1024, 1024), dtype=np.float32), "big.tif")
    return write_raster(
        rng.random((1, 1536, 1536), dtype=np.float32),
        "big.tif",
        crs="EPSG:4326",
        transform=from_origin(121.0, 31.5, 0.0005, 0.0005),
    )


@posix_only
@pytest.mark.xdist_group("geo_subprocess")
@pytest.mark.parametrize(("writer", "gate"), [("predict", 10), ("reproject", 4)])
def test_a_killed_writer_leaves_no_output_and_the_next_run_cleans_up(
    tmp_path: Path, write_raster: WriteRaster, writer: str, gate: int
) -> None:
    src = _big_scene(write_raster, writer)
    fresh, previous = tmp_path / "fresh" / "out.tif", tmp_path / "previous" / "out.tif"
    for dst in (fresh, previous):
        dst.parent.mkdir()
    previous.write_bytes(b"the user's earlier result")
    children = [
        _start(writer, src, fresh, gate, overwrite=False),
        _start(writer, src, previous, gate, overwrite=True),
    ]
    procs = [proc for proc, _ in children]
    try:
        _wait_for([marker for _, marker in children], procs)
        for proc in procs:  # both are in the middle of writing their output
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()
    assert [proc.returncode for proc in procs] == [-signal.SIGKILL] * 2
    for dst in (fresh, previous):
        for marker in dst.parent.glob("*.marker"):
            marker.unlink()
        stale = _temps(dst.parent)
        assert len(stale) == 1, stale  # the killed run's partial output, under a temporary name
    assert not fresh.exists()
    assert previous.read_bytes() == b"the user's earlier result"
    # The next run into the same folder removes the dead process's temporary file.
    for dst in (fresh, previous):
        if writer == "predict":
            predict_raster(nn.Identity().eval(), src, dst, tile=256, overlap=32, overwrite=True)
        else:
            reproject_to_utm(src, dst, overwrite=True)
        assert _temps(dst.parent) == []
        with rasterio.open(dst) as r:
            assert r.crs is not None and r.read(1, masked=True).count() > 0


@posix_only
@pytest.mark.xdist_group("geo_subprocess")
def test_two_writers_to_one_destination_one_wins_one_fails_clearly(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(1).random((3, 300, 520), dtype=np.float32)
    src = write_raster(values)
    dst = tmp_path / "out" / "map.tif"
    dst.parent.mkdir()
    children = [_start("predict", src, dst, 2, overwrite=False) for _ in range(2)]
    procs = [proc for proc, _ in children]
    try:
        _wait_for([marker for _, marker in children], procs)  # both passed the start checks
        (dst.parent / "go").touch()
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    codes = sorted(proc.returncode for proc in procs)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(err for proc, (_, err) in zip(procs, results, strict=True) if proc.returncode)
    assert "was created by another writer while this run was writing it" in loser
    with rasterio.open(dst) as r:  # the winner's result is complete
        np.testing.assert_array_equal(r.read(), values)
    assert sorted(p.name for p in dst.parent.iterdir() if not p.name.endswith(".marker")) == [
        "go",
        "map.tif",
    ]


def test_remove_path_removes_only_geofm_s_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = tmp_path / "results"
    (users / "inner").mkdir(parents=True)
    (users / "inner" / "map.tif").write_bytes(b"x")
    monkeypatch.chdir(users)
    for path in (users, Path(""), Path(".")):  # an empty path names the working folder
        with pytest.raises(ValueError, match="removes only its own temporary folders") as info:
            remove_path(path)
        assert str(info.value) == (
            f"geofm removes only its own temporary folders (*.geofm-partial), not '{path}'."
        )
    assert (users / "inner" / "map.tif").read_bytes() == b"x"
    temp = create_temp_dir(users / "tiles")
    (temp / "a.tif").write_bytes(b"x")
    remove_path(temp)
    assert not temp.exists()
    remove_path(temp)  # already gone: nothing
    single = users / "single.tif"
    single.write_bytes(b"x")
    remove_path(single)  # a file is removed whatever its name
    assert not single.exists()
