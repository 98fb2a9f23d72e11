"""predict_rasters: the values a plausible wrong implementation would get wrong.

Written against the mutants ``nox -s mutation -- geofm/geo/archive.py`` left:
how sources are found (patterns, ``~``, folders), what the model fingerprint
and the markers hold, each resume decision with its exact message, the
large-scene threshold at its boundary, and what every scene is called with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import geofm.geo.archive as archive
from geofm import InputSpec
from geofm._version import __version__
from geofm.errors import MissingDependencyError
from geofm.geo import _progress, predict_rasters

from .conftest import FakeTqdm, error_message, write_scene
from .test_archive import KW, conv_net


class Recorder:
    """Replaces archive.predict_raster: records each call's arguments, writes nothing real."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_on = fail_on

    def __call__(self, model: nn.Module, src: Any, dst: Any, **kwargs: Any) -> Path:
        self.calls.append((Path(src).name, Path(dst).name, kwargs))
        if Path(src).name == self.fail_on:
            raise RuntimeError(f"scene {self.fail_on} broke")
        Path(dst).write_bytes(b"prediction of " + Path(src).name.encode())
        return Path(dst)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    fake = Recorder()
    monkeypatch.setattr(archive, "predict_raster", fake)
    return fake


def marker_of(output: Path) -> dict[str, Any]:
    return json.loads(output.with_name(output.name + ".geofm.json").read_text())  # type: ignore[no-any-return]


# -- sources ----------------------------------------------------------------------------------


def test_a_pattern_gives_sorted_files_and_skips_folders(tmp_path: Path) -> None:
    for name in ("b.tif", "a.tif", "c.tif"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "d.tif").mkdir()  # a folder that matches the pattern
    assert archive._expand(str(tmp_path / "*.tif")) == [
        tmp_path / n for n in ("a.tif", "b.tif", "c.tif")
    ]


def test_a_pattern_matching_only_folders_matches_no_file(tmp_path: Path) -> None:
    (tmp_path / "x.tif").mkdir()
    pattern = str(tmp_path / "*.tif")
    message = error_message(FileNotFoundError, lambda: archive._expand(pattern))
    assert message == f"predict_rasters: the pattern {pattern!r} matches no file."


def test_double_star_patterns_are_recursive(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "s.tif").write_bytes(b"")
    (tmp_path / "t.tif").write_bytes(b"")
    assert archive._expand(str(tmp_path / "**" / "*.tif")) == [deep / "s.tif", tmp_path / "t.tif"]


def test_home_is_expanded_in_patterns_and_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "s.tif").write_bytes(b"")
    assert archive._expand("~/*.tif") == [tmp_path / "s.tif"]
    assert archive._expand("~/s.tif") == [tmp_path / "s.tif"]
    assert archive._expand(["~/s.tif"]) == [tmp_path / "s.tif"]


def test_one_path_or_path_like_is_one_source(tmp_path: Path) -> None:
    (tmp_path / "s.tif").write_bytes(b"")
    assert archive._expand(str(tmp_path / "s.tif")) == [tmp_path / "s.tif"]
    assert archive._expand(tmp_path / "s.tif") == [tmp_path / "s.tif"]
    assert archive._expand((tmp_path / "s.tif",)) == [tmp_path / "s.tif"]


def test_missing_sources_are_counted_and_the_first_five_named(tmp_path: Path) -> None:
    missing = [tmp_path / f"m{k}.tif" for k in range(6)]
    message = error_message(FileNotFoundError, lambda: archive._expand(missing))
    named = ", ".join(str(p) for p in missing[:5])
    assert message == f"predict_rasters: 6 source(s) do not exist: {named}."


def test_a_folder_is_not_a_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="1 source"):
        archive._expand([tmp_path])


def test_no_sources_message() -> None:
    message = error_message(ValueError, lambda: archive._expand([]))
    assert message == "predict_rasters got no sources; pass paths or a glob pattern."


# -- identities, fingerprints, markers ---------------------------------------------------------


def test_identity_is_inode_size_and_time(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert archive._identity(path) is None
    path.write_bytes(b"12345")
    os.utime(path, ns=(7, 123456789))
    assert archive._identity(path) == [path.stat().st_ino, 5, 123456789]


class _Pair(nn.Module):
    def __init__(self, first: str = "a", shape: tuple[int, ...] = (2, 3)) -> None:
        super().__init__()
        values = torch.arange(6, dtype=torch.float32).reshape(shape)
        other = "b" if first == "a" else "a"
        self.register_parameter(first, nn.Parameter(values))
        self.register_buffer(other, torch.ones(2))


class _PairToo(_Pair):
    pass


def test_model_digest_follows_the_documented_layout() -> None:
    model = _Pair()
    expected = hashlib.sha256(f"{__name__}._Pair".encode())
    for name, value in (("a", model.a), ("b", model.b)):
        expected.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        expected.update(value.detach().numpy().tobytes())
    assert archive._model_digest(model) == expected.hexdigest()


def test_model_digest_ignores_registration_order_only() -> None:
    digest = archive._model_digest(_Pair())
    assert archive._model_digest(_Pair(first="b")) != digest  # other names for the values
    swapped = _Pair()
    swapped._parameters.clear()
    swapped._buffers.clear()
    swapped.register_buffer("b", torch.ones(2))
    swapped.register_parameter("a", nn.Parameter(torch.arange(6.0).reshape(2, 3)))
    assert archive._model_digest(swapped) == digest
    assert archive._model_digest(_Pair(shape=(3, 2))) != digest  # same bytes, other shape
    assert archive._model_digest(_PairToo()) != digest  # another class
    as_int = _Pair()
    as_int.a = nn.Parameter(_Pair().a.detach().view(torch.int32), requires_grad=False)
    assert archive._model_digest(as_int) != digest  # same bytes, other dtype


class _WithExtraState(nn.Module):
    def __init__(self, extra: Any) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.extra = extra

    def get_extra_state(self) -> Any:
        return self.extra

    def set_extra_state(self, state: Any) -> None:
        self.extra = state


def test_model_digest_includes_non_tensor_state() -> None:
    digests = {archive._model_digest(_WithExtraState(x)) for x in ({"k": 1}, {"k": 2}, [1])}
    assert len(digests) == 3
    expected = hashlib.sha256(f"{__name__}._WithExtraState".encode())
    expected.update(b"_extra_state={'k': 1}")
    expected.update(b"w:torch.float32:(1,)")
    expected.update(torch.ones(1).numpy().tobytes())
    assert archive._model_digest(_WithExtraState({"k": 1})) == expected.hexdigest()


def test_model_digest_of_a_non_contiguous_parameter_reads_its_values() -> None:
    model = _Pair()
    model.a = nn.Parameter(torch.arange(6.0).reshape(3, 2).t())  # (2, 3), not contiguous
    expected = hashlib.sha256(f"{__name__}._Pair".encode())
    expected.update(b"a:torch.float32:(2, 3)")
    expected.update(torch.arange(6.0).reshape(3, 2).t().contiguous().numpy().tobytes())
    expected.update(b"b:torch.float32:(2,)")
    expected.update(torch.ones(2).numpy().tobytes())
    assert archive._model_digest(model) == expected.hexdigest()


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '{"format": "geofm.predict_rasters/2"}', '{"no": "format"}', "\xff"],
)
def test_unreadable_or_foreign_markers_are_no_markers(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text, encoding="latin-1")
    assert archive._read_marker(path) is None


def test_a_marker_that_is_a_folder_is_no_marker(tmp_path: Path) -> None:
    assert archive._read_marker(tmp_path) is None
    assert archive._read_marker(tmp_path / "missing.json") is None


def test_markers_are_sorted_indented_json(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    data = {"format": "geofm.predict_rasters/1", "b": [1, 2], "a": None}
    archive._write_marker(path, data)
    assert path.read_text(encoding="utf-8") == json.dumps(data, indent=1, sort_keys=True)
    assert archive._read_marker(path) == data
    assert archive._marker_path(Path("x/s.tif")) == Path("x/s.tif.geofm.json")


def test_a_scenes_marker_records_model_arguments_source_and_output(
    scenes: list[Path], tmp_path: Path, recorder: Recorder
) -> None:
    spec = InputSpec(num_bands=3, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    model = conv_net()
    [out] = predict_rasters(
        model,
        [scenes[1]],
        tmp_path / "out",
        bands=(1, 2, 3),
        input_spec=spec,
        colormap={0: (1, 2, 3), 3: (4, 5, 6)},
        **KW,
    )
    marker = marker_of(out)
    digest = archive._model_digest(model)
    arguments = marker["arguments"]
    assert arguments["bands"] == [1, 2, 3]
    assert arguments["input_spec"] == spec.to_dict()
    assert arguments["colormap"] == {"0": [1, 2, 3], "3": [4, 5, 6]}
    assert arguments["tile"] == 16 and "progress" not in arguments and "device" not in arguments
    fingerprint = hashlib.sha256(json.dumps([digest, arguments], sort_keys=True).encode())
    st = scenes[1].stat()
    assert marker == {
        "format": "geofm.predict_rasters/1",
        "fingerprint": fingerprint.hexdigest(),
        "model": "torch.nn.modules.container.Sequential",
        "model_sha256": digest,
        "arguments": arguments,
        "geofm_version": __version__,
        "source": {
            "path": str(scenes[1].resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        },
        "replaces": None,
        "output": archive._identity(out),
    }


def test_input_spec_model_is_recorded_as_the_word(
    scenes: list[Path], tmp_path: Path, recorder: Recorder
) -> None:
    [out] = predict_rasters(conv_net(), [scenes[0]], tmp_path / "o", input_spec="model", **KW)
    assert marker_of(out)["arguments"]["input_spec"] == "model"
    assert marker_of(out)["arguments"]["bands"] is None
    assert marker_of(out)["arguments"]["colormap"] is None


def test_an_overwrite_records_the_output_it_replaces(
    scenes: list[Path], tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    [out] = predict_rasters(conv_net(), [scenes[0]], tmp_path / "o", **KW)
    first = archive._identity(out)
    seen: list[Any] = []
    original = archive._write_marker

    def spy(path: Path, data: Any) -> None:
        seen.append(dict(data))
        original(path, data)

    monkeypatch.setattr(archive, "_write_marker", spy)
    predict_rasters(conv_net(), [scenes[0]], tmp_path / "o", overwrite=True, **KW)
    assert [d["output"] for d in seen] == [None, archive._identity(out)]
    assert seen[0]["replaces"] == first


# -- what each scene is called with -------------------------------------------------------


def test_every_scene_gets_the_options_and_overwrite_without_its_own_bar(
    scenes: list[Path], tmp_path: Path, recorder: Recorder, fake_tqdm: list[FakeTqdm]
) -> None:
    predict_rasters(conv_net(), scenes[:2], tmp_path / "o", suffix="_x", **{**KW, "progress": True})
    assert [(src, dst) for src, dst, _ in recorder.calls] == [
        ("s0.tif", "s0_x.tif"),
        ("s1.tif", "s1_x.tif"),
    ]
    kwargs = recorder.calls[0][2]
    assert kwargs["overwrite"] is True and kwargs["progress"] is False
    assert kwargs["shard_across_ranks"] is False
    assert (kwargs["tile"], kwargs["overlap"], kwargs["batch_size"]) == (16, 4, 8)
    assert kwargs["blend"] == "cosine" and kwargs["device"] is None


def test_a_failing_scene_raises_its_error_and_keeps_finished_outputs(
    scenes: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tqdm: list[FakeTqdm]
) -> None:
    monkeypatch.setattr(archive, "predict_raster", Recorder(fail_on="s1.tif"))
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match="^scene s1.tif broke$"):
        predict_rasters(conv_net(), scenes[:3], out, **{**KW, "progress": True})
    assert (out / "s0.tif").exists() and not (out / "s1.tif").exists()
    assert marker_of(out / "s1.tif")["output"] is None  # pending: predicted again on a rerun
    [bar] = fake_tqdm
    assert (bar.count, bar.total, bar.closed) == (1, 3, True)


def test_a_plan_failure_on_one_process_raises_the_error_itself(
    tmp_path: Path, recorder: Recorder
) -> None:
    (tmp_path / "s.tif").write_bytes(b"not a raster")
    with pytest.raises(Exception, match="not recognized|not a supported") as caught:
        predict_rasters(conv_net(), [tmp_path / "s.tif"], tmp_path / "o", **KW)
    assert not isinstance(caught.value, (RuntimeError, FileExistsError))
    assert recorder.calls == []


def test_skipped_scenes_are_logged_on_rank_zero(
    scenes: list[Path], tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    predict_rasters(conv_net(), scenes[:1], tmp_path / "o", **KW)
    with caplog.at_level(logging.INFO, logger="geofm.geo.archive"):
        predict_rasters(conv_net(), scenes[:3], tmp_path / "o", **KW)
    assert caplog.messages == ["predict_rasters: 1 of 3 scenes already predicted, skipped."]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="geofm.geo.archive"):
        predict_rasters(conv_net(), scenes[3:], tmp_path / "p", **KW)
    assert caplog.messages == []


def test_progress_bar_names_the_rank_only_with_several(fake_tqdm: list[FakeTqdm]) -> None:
    archive._progress_bar(5, 0, 1)
    archive._progress_bar(7, 1, 3)
    assert [(b.total, b.unit, b.desc) for b in fake_tqdm] == [
        (5, "scene", "predict_rasters"),
        (7, "scene", "predict_rasters (rank 1 of 3)"),
    ]


# -- resume decisions, exactly ---------------------------------------------------------------


@pytest.mark.parametrize(("count", "more"), [(5, ""), (6, "; and 1 more"), (7, "; and 2 more")])
def test_five_conflicts_are_named_and_the_rest_counted(
    scenes: list[Path], tmp_path: Path, count: int, more: str
) -> None:
    sources = [write_scene(tmp_path / "scenes" / f"t{k}.tif", seed=k) for k in range(count)]
    out = tmp_path / "o"
    out.mkdir()
    for src in sources:
        (out / src.name).write_bytes(b"x")
    message = error_message(
        FileExistsError, lambda: predict_rasters(conv_net(), sources, out, **KW)
    )
    shown = "; ".join(
        f"'{out / f't{k}.tif'}' exists without a predict_rasters marker" for k in range(5)
    )
    assert message == (
        f"predict_rasters will not reuse {count} existing output(s): {shown}{more}. "
        "Pass overwrite=True to predict them again, or choose another out_dir."
    )


def test_without_rasterio_predict_rasters_names_itself(
    scenes: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setitem(sys.modules, "rasterio", None)  # `import rasterio` raises ImportError
    message = error_message(
        MissingDependencyError,
        lambda: predict_rasters(conv_net(), scenes[:1], tmp_path / "o", **KW),
    )
    assert message == (
        "rasterio is required for geofm.geo.predict_rasters. Install it with: pip install rasterio."
    )


def _status_of(src: Path, dst: Path, marker: dict[str, Any]) -> tuple[str, str]:
    archive._write_marker(archive._marker_path(dst), marker)
    return archive._status(src, dst, "fp", overwrite=False)


def test_each_status_and_reason(tmp_path: Path) -> None:
    src, dst = tmp_path / "s.tif", tmp_path / "o.tif"
    src.write_bytes(b"source")
    assert archive._status(src, dst, "fp", overwrite=False) == ("todo", "")
    dst.write_bytes(b"output")
    assert archive._status(src, dst, "fp", overwrite=True) == ("todo", "")
    assert archive._status(src, dst, "fp", overwrite=False) == (
        "todo",
        "exists without a predict_rasters marker",
    )
    good = {
        "format": "geofm.predict_rasters/1",
        "fingerprint": "fp",
        "source": archive._source_record(src),
        "output": archive._identity(dst),
        "replaces": None,
    }
    assert _status_of(src, dst, good) == ("done", "")
    assert _status_of(src, dst, {**good, "fingerprint": "other"}) == (
        "todo",
        "was predicted with another model or other arguments",
    )
    moved = {**good, "source": {**good["source"], "size": 1}}
    assert _status_of(src, dst, moved) == (
        "todo",
        "was predicted from another version of s.tif (size or time changed)",
    )
    assert _status_of(src, dst, {**good, "output": [0, 0, 0]}) == (
        "todo",
        "was modified after predict_rasters wrote it",
    )
    assert _status_of(src, dst, {**good, "output": None, "replaces": None}) == ("finish", "")
    killed = {**good, "output": None, "replaces": archive._identity(dst)}
    assert _status_of(src, dst, killed) == ("todo", "")


def test_source_record_is_resolved_path_size_and_time(tmp_path: Path) -> None:
    src = tmp_path / "s.tif"
    src.write_bytes(b"abc")
    os.utime(src, ns=(5, 987654321))
    record = archive._source_record(tmp_path / "." / "s.tif")
    assert record == {"path": str(src.resolve()), "size": 3, "mtime_ns": 987654321}


# -- the plan: large scenes and shares ----------------------------------------------------


def _plan(scenes: list[Path], tmp_path: Path, world: int, large: int | None) -> dict[str, Any]:
    outputs = [tmp_path / "plan" / p.name for p in scenes]
    return archive._plan(scenes, outputs, "fp", False, large, world, {"r": 1})


def test_the_default_threshold_is_more_than_an_even_share(
    scenes: list[Path], tmp_path: Path
) -> None:
    # 24 x (40, 44, 48, 52) pixels: 960, 1056, 1152, 1248; total 4416.
    big = write_scene(tmp_path / "big.tif", seed=5, height=50, width=45)  # 2250 px
    total = 4416 + 2250
    assert total // 2 + 1 == 3334  # the default threshold: no scene is that large
    plan = _plan([*scenes, big], tmp_path, 2, None)
    assert plan["large"] == []
    assert sorted(k for share in plan["small"] for k in share) == [0, 1, 2, 3, 4]
    assert plan["small"] == [[1, 4], [0, 2, 3]]  # 2250, then 1248 1152 1056 960 balanced
    assert plan["record"] == {"r": 1} and plan["skipped"] == 0
    bigger = write_scene(tmp_path / "bigger.tif", seed=6, height=98, width=45)  # 4410 px
    # total 8826: threshold 4414, so 4410 is not large; with 4416 it would be.
    assert _plan([*scenes, bigger], tmp_path, 2, None)["large"] == []
    biggest = write_scene(tmp_path / "biggest.tif", seed=6, height=100, width=45)  # 4500 px
    # total 8916: threshold 4459 <= 4500.
    assert _plan([*scenes, biggest], tmp_path, 2, None)["large"] == [4]


@pytest.mark.parametrize(("pixels", "large"), [((48, 92), []), ((7, 631), [4])])
def test_a_scene_of_exactly_the_default_threshold_is_large(
    scenes: list[Path], tmp_path: Path, pixels: tuple[int, int], large: list[int]
) -> None:
    # 4416 pixels in the four scenes; with X more, the threshold is (4416 + X) // 2 + 1:
    # 4417 for X = 4416 (not large) and for X = 4417 (large: exactly the threshold).
    height, width = pixels
    extra = write_scene(tmp_path / "x.tif", seed=8, height=height, width=width)
    assert _plan([*scenes, extra], tmp_path, 2, None)["large"] == large


def test_a_threshold_of_one_pixel_makes_every_scene_large(
    scenes: list[Path], tmp_path: Path
) -> None:
    plan = _plan(scenes, tmp_path, 2, 1)
    assert plan["large"] == [0, 1, 2, 3] and plan["small"] == [[], []]


def test_an_explicit_threshold_counts_a_scene_of_exactly_that_size(
    scenes: list[Path], tmp_path: Path
) -> None:
    plan = _plan(scenes, tmp_path, 3, 1152)
    assert plan["large"] == [2, 3]
    assert plan["small"] == [[1], [0], []]
    assert _plan(scenes, tmp_path, 3, 1153)["large"] == [3]


def test_one_process_has_no_large_scenes(scenes: list[Path], tmp_path: Path) -> None:
    assert _plan(scenes, tmp_path, 1, 1)["large"] == []
    assert _plan(scenes, tmp_path, 1, None) == {
        "large": [],
        "small": [[0, 1, 2, 3]],
        "record": {"r": 1},
        "skipped": 0,
    }


def test_the_plan_counts_skipped_scenes_and_leaves_them_out(
    scenes: list[Path], tmp_path: Path, recorder: Recorder
) -> None:
    out = tmp_path / "plan"
    predict_rasters(conv_net(), scenes[1:3], out, **KW)
    marker = marker_of(out / "s1.tif")
    plan = archive._plan(
        scenes, [out / p.name for p in scenes], marker["fingerprint"], False, None, 2, {}
    )
    # Left: 960 and 1248 pixels; the default threshold 2208 // 2 + 1 = 1105 makes s3 large.
    assert plan == {"large": [3], "small": [[0], []], "record": {}, "skipped": 2}


def test_a_finished_scene_with_a_pending_marker_is_completed_in_the_plan(
    scenes: list[Path], tmp_path: Path, recorder: Recorder
) -> None:
    out = tmp_path / "plan"
    predict_rasters(conv_net(), scenes[:1], out, **KW)
    marker = marker_of(out / "s0.tif")
    path = archive._marker_path(out / "s0.tif")
    path.write_text(json.dumps({**marker, "output": None}))
    plan = archive._plan(scenes[:1], [out / "s0.tif"], marker["fingerprint"], False, None, 1, {})
    assert plan["skipped"] == 1 and plan["small"] == [[]]
    assert json.loads(path.read_text()) == marker


def test_assign_spreads_equal_scenes_over_every_rank() -> None:
    assert archive._assign([], 2) == []
    assert archive._assign([1] * 4, 4) == [0, 1, 2, 3]
    assert archive._assign([2, 1, 1], 2) == [0, 1, 1]


def test_unknown_option_message_lists_the_known_ones() -> None:
    message = error_message(TypeError, lambda: archive._predict_options({"tiles": 1, "zz": 2}))
    assert message == (
        "predict_rasters got unexpected keyword arguments ['tiles', 'zz']; expected its own or "
        f"those of predict_raster: {list(archive._SCENE_DEFAULTS)}."
    )
    assert archive._predict_options({"tile": 64})["tile"] == 64
    assert archive._predict_options({})["overlap"] == 32
    assert "progress" not in archive._SCENE_DEFAULTS
    assert "device" in archive._SCENE_DEFAULTS


# -- defaults and argument errors, exactly ----------------------------------------------------


def test_the_progress_bar_is_on_by_default(
    scenes: list[Path], tmp_path: Path, recorder: Recorder, fake_tqdm: list[FakeTqdm]
) -> None:
    options = {k: v for k, v in KW.items() if k != "progress"}
    predict_rasters(conv_net(), scenes[:2], tmp_path / "o", **options)
    [bar] = fake_tqdm
    assert (bar.total, bar.count, bar.closed) == (2, 2, True)


def test_without_tqdm_the_log_names_predict_rasters(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(_progress, "_EXPLAINED", set())
    with caplog.at_level(logging.INFO, logger="geofm.geo"):
        assert archive._progress_bar(3, 0, 1) is None
    assert caplog.messages == ["tqdm is not installed, so predict_rasters shows no progress bar."]


def test_a_large_scene_threshold_of_one_pixel_is_accepted(
    scenes: list[Path], tmp_path: Path, recorder: Recorder
) -> None:
    predict_rasters(conv_net(), scenes[:1], tmp_path / "o", large_scene_pixels=1, **KW)
    assert [src for src, _, _ in recorder.calls] == ["s0.tif"]
    message = error_message(
        ValueError,
        lambda: predict_rasters(conv_net(), scenes[:1], tmp_path / "o", large_scene_pixels=0),
    )
    assert message == "large_scene_pixels must be >= 1 or None, got 0."


def test_a_model_in_training_mode_is_refused_with_the_fix(
    scenes: list[Path], tmp_path: Path
) -> None:
    message = error_message(
        ValueError, lambda: predict_rasters(conv_net().train(), scenes[:1], tmp_path, **KW)
    )
    assert message == (
        "predict_rasters got a model in training mode (dropout and batch norm would use batch "
        "statistics). Call model.eval() first."
    )


def test_two_sources_with_one_output_name_are_both_named(
    scenes: list[Path], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    twin = write_scene(other / "s1.tif", seed=9)
    out = tmp_path / "o"
    message = error_message(
        ValueError, lambda: predict_rasters(conv_net(), [*scenes[:2], twin], out, **KW)
    )
    assert message == (
        f"Sources '{scenes[1]}' and '{twin}' would both be written to '{out / 's1.tif'}'. "
        "Rename one, or predict them into different out_dir folders."
    )
    message = error_message(
        ValueError, lambda: predict_rasters(conv_net(), scenes[:1], scenes[0].parent, **KW)
    )
    assert message == (
        f"Output '{scenes[0]}' is its source '{scenes[0]}'. Choose another out_dir or a suffix."
    )


def test_the_marker_records_exactly_the_scene_arguments(
    scenes: list[Path], tmp_path: Path, recorder: Recorder
) -> None:
    [out] = predict_rasters(conv_net(), scenes[:1], tmp_path / "o", bands=range(1, 4), **KW)
    arguments = marker_of(out)["arguments"]
    assert sorted(arguments) == sorted(set(archive._SCENE_DEFAULTS) - {"device"})
    assert arguments["bands"] == [1, 2, 3]  # a range, recorded as its list


def test_no_bar_when_progress_is_off(
    scenes: list[Path], tmp_path: Path, recorder: Recorder, fake_tqdm: list[FakeTqdm]
) -> None:
    predict_rasters(conv_net(), scenes[:2], tmp_path / "o", **KW)  # progress=False
    assert fake_tqdm == []
