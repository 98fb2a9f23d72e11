"""predict_raster: the values a plausible wrong implementation would get wrong.

Written against the mutants ``nox -s mutation -- geofm/geo/predict.py`` left:
the default palette, the band descriptions and layout of the written file, the
output-shape and class-count checks at their limits, device matching, the
documented defaults (overlap, batch size, silence), the progress bar, and the
``colormap`` validation, each with its exact message.
"""

from __future__ import annotations

import itertools
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from geofm import InputSpec, OutputSpec
from geofm.errors import MissingDependencyError, ShapeError
from geofm.geo import _progress, predict_raster
from geofm.geo.predict import _rank_range, _resolve_device

from .conftest import FakeTqdm, error_message, write_geotiff

WriteRaster = Callable[..., Path]

# The default palette's first colours: hue k * 0.618... (golden ratio), saturation
# 0.65, value 0.95, worked out by hand for k = 0 (red, 0.95 * 255 = 242 and
# 0.95 * 0.35 * 255 = 85) and read off colorsys for the others.
FIRST_COLOURS = [(242, 85, 85), (85, 131, 242), (177, 242, 85), (242, 85, 223), (85, 242, 216)]


class Channels(nn.Module):
    """A 1x1 convolution to ``k`` channels with fixed, distinct weights."""

    def __init__(self, in_channels: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, k, 1)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.linspace(-1, 1, k * in_channels).view(k, in_channels, 1, 1)
            )
            self.conv.bias.copy_(torch.linspace(0.5, -0.5, k))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Returns(nn.Module):
    """Returns ``make(x)``: outputs of the wrong kind or shape."""

    def __init__(self, make: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.make = make
        self.eval()

    def forward(self, x: torch.Tensor) -> object:
        return self.make(x)


class BatchSizes(nn.Module):
    """A 3x3 convolution recording the batch size and tile edge of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)  # zero padding: tile edges differ
        self.calls: list[tuple[int, int]] = []
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((int(x.shape[0]), int(x.shape[-1])))
        return self.conv(x)


def _scene(
    write_raster: WriteRaster, height: int = 40, width: int = 48, name: str = "s.tif"
) -> Path:
    values = np.random.default_rng(3).random((3, height, width), dtype=np.float32)
    return write_raster(values, name)


def _colour_table(path: Path) -> dict[int, tuple[int, int, int, int]]:
    """The colour table of band 1 of ``path``, as GDAL reads it back (RGBA)."""
    with rasterio.open(path) as r:
        return dict(r.colormap(1))


# --- the file written ---------------------------------------------------------------------


def test_default_palette_is_the_golden_ratio_hues_and_nodata_black(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    out = predict_raster(
        Channels(3, 5), _scene(write_raster), tmp_path / "c.tif", tile=16, overlap=4
    )
    with rasterio.open(out) as r:
        colours = r.colormap(1)
        assert r.descriptions == ("class",)
    assert [colours[k] for k in range(5)] == [(*rgb, 255) for rgb in FIRST_COLOURS]
    # GeoTIFF colour tables have no alpha; GDAL makes the nodata entry transparent.
    assert colours[255] == (0, 0, 0, 0)


def test_a_one_channel_model_gets_two_colours(tmp_path: Path, write_raster: WriteRaster) -> None:
    out = predict_raster(
        Channels(3, 1), _scene(write_raster), tmp_path / "c.tif", tile=16, overlap=4
    )
    colours = _colour_table(out)
    assert [colours[0], colours[1]] == [(*rgb, 255) for rgb in FIRST_COLOURS[:2]]
    assert colours[2] == (0, 0, 0, 255)  # entries past the classes stay unset (black)


def test_a_partial_colormap_keeps_the_default_colours_of_the_other_classes(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    out = predict_raster(
        Channels(3, 4),
        _scene(write_raster),
        tmp_path / "c.tif",
        tile=16,
        overlap=4,
        colormap={2: (1, 2, 3), 254: (0, 255, 0)},
    )
    colours = _colour_table(out)
    assert [colours[k] for k in range(4)] == [
        (*FIRST_COLOURS[0], 255),
        (*FIRST_COLOURS[1], 255),
        (1, 2, 3, 255),
        (*FIRST_COLOURS[3], 255),
    ]
    assert colours[254] == (0, 255, 0, 255)


@pytest.mark.parametrize("output", ["probability", "regression"])
def test_float_outputs_name_every_band_and_use_nan_nodata(
    tmp_path: Path, write_raster: WriteRaster, output: str
) -> None:
    out = predict_raster(
        Channels(3, 3),
        _scene(write_raster),
        tmp_path / "p.tif",
        tile=16,
        overlap=4,
        output=output,  # type: ignore[arg-type]
    )
    with rasterio.open(out) as r:
        assert r.descriptions == (f"{output}_0", f"{output}_1", f"{output}_2")
        assert r.count == 3 and r.dtypes == ("float32",) * 3
        assert r.nodata is not None and math.isnan(r.nodata)
        assert r.profile["tiled"] and r.block_shapes == [(256, 256)] * 3
        assert r.compression == rasterio.enums.Compression.deflate
        assert r.crs == rasterio.crs.CRS.from_epsg(32618)


def test_only_the_not_georeferenced_warning_of_opening_the_output_is_silenced(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rasterio.open(..., "w") of an ungeoreferenced output warns NotGeoreferencedWarning, which
    # allow_ungeoreferenced=True asked for; any other warning of that call must still reach the
    # user (a filter without the category would swallow it).
    scene = _scene(write_raster)  # written before rasterio.open is replaced
    real_open = rasterio.open

    def open_warning(path: object, mode: str = "r", **kwargs: object) -> object:
        if mode == "w":
            warnings.warn("a creation option was ignored", UserWarning, stacklevel=2)
            warnings.warn("no geotransform", rasterio.errors.NotGeoreferencedWarning, stacklevel=2)
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(rasterio, "open", open_warning)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        predict_raster(Channels(3, 2), scene, tmp_path / "p.tif", tile=16, overlap=4)
    messages = [(w.category, str(w.message)) for w in seen]
    assert (UserWarning, "a creation option was ignored") in messages
    assert not [m for m in messages if m[0] is rasterio.errors.NotGeoreferencedWarning]


def test_class_output_layout(tmp_path: Path, write_raster: WriteRaster) -> None:
    out = predict_raster(
        Channels(3, 3), _scene(write_raster), tmp_path / "c.tif", tile=16, overlap=4
    )
    with rasterio.open(out) as r:
        assert (r.count, r.dtypes, r.nodata) == (1, ("uint8",), 255)
        assert r.profile["tiled"] and r.block_shapes == [(256, 256)]
        assert r.compression == rasterio.enums.Compression.deflate
        assert (r.height, r.width) == (40, 48)


# --- the model's output ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "got"),
    [
        (lambda x: x[:, 0], "(1, 16, 16)"),  # no channel axis
        (lambda x: {"out": x}, "dict"),
        (lambda x: x[..., :15], "(1, 3, 16, 15)"),  # one column short
        (lambda x: x[..., :15, :], "(1, 3, 15, 16)"),  # one row short
    ],
)
def test_a_model_output_of_the_wrong_kind_is_refused_with_its_shape(
    tmp_path: Path,
    write_raster: WriteRaster,
    make: Callable[[torch.Tensor], object],
    got: str,
) -> None:
    message = error_message(
        ShapeError,
        lambda: predict_raster(
            Returns(make), _scene(write_raster), tmp_path / "o.tif", tile=16, overlap=4
        ),
    )
    assert message == (
        "predict_raster needs a model mapping (N, 3, 16, 16) to (N, K, 16, 16) tensors, "
        f"got {got}. Wrap the model so it returns full-resolution logits (e.g. upsample, "
        "or pick the tensor from a dict)."
    )
    assert not (tmp_path / "o.tif").exists()


def test_255_classes_fit_a_class_map_and_256_do_not(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = _scene(write_raster, 16, 16)
    out = predict_raster(Channels(3, 255), src, tmp_path / "a.tif", tile=16, overlap=0)
    with rasterio.open(out) as r:
        assert r.read(1).max() <= 254
    message = error_message(
        ShapeError,
        lambda: predict_raster(Channels(3, 256), src, tmp_path / "b.tif", tile=16, overlap=0),
    )
    assert message == (
        "output='class' writes uint8 ids with 255 as nodata, so at most 255 classes fit; "
        "the model gives 256. Use output='probability'."
    )
    out = predict_raster(
        Channels(3, 256), src, tmp_path / "c.tif", tile=16, overlap=0, output="probability"
    )
    with rasterio.open(out) as r:
        assert r.count == 256


# --- devices ---------------------------------------------------------------------------------


def test_a_device_naming_the_model_s_device_with_an_index_is_accepted(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = _scene(write_raster)
    a = predict_raster(Channels(3, 3), src, tmp_path / "a.tif", tile=16, overlap=4, device="cpu:0")
    b = predict_raster(Channels(3, 3), src, tmp_path / "b.tif", tile=16, overlap=4)
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        np.testing.assert_array_equal(ra.read(), rb.read())


def test_a_device_other_than_the_model_s_is_refused() -> None:
    model = nn.Linear(2, 2, device="meta")
    message = error_message(ValueError, lambda: _resolve_device(model, "cpu"))
    assert message == (
        "predict_raster got device='cpu' but the model's parameters are on 'meta'. "
        "Move the model first: model.to('cpu')."
    )
    assert _resolve_device(model, None) == torch.device("meta")
    assert _resolve_device(model, "meta") == torch.device("meta")
    # A model without parameters runs wherever it is asked to.
    assert _resolve_device(nn.Identity(), "meta") == torch.device("meta")
    assert _resolve_device(nn.Identity(), None) == torch.device("cpu")


# --- defaults --------------------------------------------------------------------------------


def test_default_overlap_is_32_and_default_batch_is_8_tiles(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    # 64-pixel tiles 32 apart: a 64 x 352 scene is one row band of 10 tiles.
    src = _scene(write_raster, 64, 352)
    torch.manual_seed(0)
    model = BatchSizes()
    default = predict_raster(model, src, tmp_path / "d.tif", tile=64, output="regression")
    assert model.calls == [(1, 64), (8, 64), (2, 64)]  # the probe, then batches of 8
    explicit = predict_raster(
        model, src, tmp_path / "e.tif", tile=64, overlap=32, batch_size=8, output="regression"
    )
    other = predict_raster(model, src, tmp_path / "o.tif", tile=64, overlap=16, output="regression")
    with rasterio.open(default) as d, rasterio.open(explicit) as e, rasterio.open(other) as o:
        np.testing.assert_array_equal(d.read(), e.read())
        assert not np.array_equal(d.read(), o.read())


def test_no_progress_bar_unless_asked(
    tmp_path: Path, write_raster: WriteRaster, capsys: pytest.CaptureFixture[str]
) -> None:
    predict_raster(Channels(3, 2), _scene(write_raster), tmp_path / "c.tif", tile=16, overlap=4)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_the_progress_bar_counts_tiles(
    tmp_path: Path, write_raster: WriteRaster, fake_tqdm: list[FakeTqdm]
) -> None:
    # 16-pixel tiles 12 apart over 40 x 48: 3 rows of 4 tiles.
    predict_raster(
        Channels(3, 2),
        _scene(write_raster),
        tmp_path / "c.tif",
        tile=16,
        overlap=4,
        progress=True,
    )
    [bar] = fake_tqdm
    assert (bar.total, bar.count, bar.unit, bar.desc, bar.closed) == (
        12,
        12,
        "tile",
        "predict_raster",
        True,
    )


def test_without_tqdm_the_log_names_predict_raster(
    tmp_path: Path,
    write_raster: WriteRaster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import raises ImportError
    monkeypatch.setattr(_progress, "_EXPLAINED", set())
    with caplog.at_level("INFO", logger="geofm.geo"):
        predict_raster(
            Channels(3, 2),
            _scene(write_raster),
            tmp_path / "c.tif",
            tile=16,
            overlap=4,
            progress=True,
        )
    said = [r.getMessage() for r in caplog.records if "tqdm" in r.getMessage()]
    assert said == ["tqdm is not installed, so predict_raster shows no progress bar."]


# --- colormap --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "colormap",
    [
        {255: (1, 2, 3)},  # nodata's entry
        {-1: (1, 2, 3)},
        {"1": (1, 2, 3)},
        {1.0: (1, 2, 3)},
        {True: (1, 2, 3)},
        {1: (1, 2)},
        {1: (1, 2, 3, 4)},
        {1: (1, 2, 256)},
        {1: (-1, 2, 3)},
        {1: (1.0, 2, 3)},
        {1: (1, 2, True)},
        {1: "red"},
        {1: 7},
    ],
)
def test_a_bad_colormap_is_refused_before_anything_runs(
    tmp_path: Path, write_raster: WriteRaster, colormap: dict[object, object]
) -> None:
    model = BatchSizes()
    message = error_message(
        ValueError,
        lambda: predict_raster(
            model,
            _scene(write_raster),
            tmp_path / "c.tif",
            tile=16,
            overlap=4,
            colormap=colormap,  # type: ignore[arg-type]
        ),
    )
    [(key, rgb)] = colormap.items()
    assert message == (
        f"colormap must map class ids 0..254 to (r, g, b) integers in 0..255, got {key!r}: {rgb!r}."
    )
    assert model.calls == [] and not (tmp_path / "c.tif").exists()


def test_colormap_limits_and_numpy_integers_are_accepted(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    colormap = {0: (0, 0, 0), np.int64(1): [255, 255, 255], 254: (np.uint8(7), 8, 9)}
    out = predict_raster(
        Channels(3, 2),
        _scene(write_raster),
        tmp_path / "c.tif",
        tile=16,
        overlap=4,
        colormap=colormap,  # type: ignore[arg-type]
    )
    colours = _colour_table(out)
    assert (colours[0], colours[1], colours[254]) == ((0, 0, 0, 255), (255,) * 4, (7, 8, 9, 255))


# --- rank ranges ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "world"), [(0, 3), (1, 2), (5, 2), (10, 3), (7, 7), (3, 5), (100, 8)]
)
def test_rank_ranges_cover_every_band_once_in_near_equal_parts(n: int, world: int) -> None:
    parts = [_rank_range(n, rank, world) for rank in range(world)]
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    sizes = [stop - start for start, stop in parts]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1 and sum(sizes) == n


def test_rank_ranges_by_hand() -> None:
    assert [_rank_range(10, r, 3) for r in range(3)] == [(0, 3), (3, 7), (7, 10)]
    assert [_rank_range(5, r, 2) for r in range(2)] == [(0, 2), (2, 5)]


# --- argument errors, one cause at a time, with their whole messages --------------------------


@pytest.mark.parametrize(
    ("kwargs", "kind", "expected"),
    [
        (
            {"input_spec": "bogus"},
            ValueError,
            "input_spec must be 'model', an InputSpec or None, got 'bogus'.",
        ),
        (
            {"tile": 16, "overlap": 4, "batch_size": 0},
            ValueError,
            "tile and batch_size must be >= 1, got tile=16, batch_size=0.",
        ),
        (
            {"tile": 16, "overlap": 9},
            ValueError,
            "overlap must be in [0, tile // 2] = [0, 8], got 9. "
            "Use a smaller overlap or a larger tile.",
        ),
        (
            {"tile": 17, "overlap": -1},
            ValueError,
            "overlap must be in [0, tile // 2] = [0, 8], got -1. "
            "Use a smaller overlap or a larger tile.",
        ),
        (
            {"blend": "gaussian"},
            ValueError,
            "Unknown blend 'gaussian'. Expected one of: cosine, linear, none.",
        ),
        (
            {"output": "logits"},
            ValueError,
            "Unknown output 'logits'. Expected one of: class, probability, regression.",
        ),
        (
            {"channels_last": 1},
            TypeError,
            "channels_last must be a bool, got int.",
        ),
    ],
    ids=["input_spec", "batch_size", "overlap", "negative-overlap", "blend", "output", "nhwc"],
)
def test_each_argument_error_alone_with_its_message(
    tmp_path: Path,
    write_raster: WriteRaster,
    kwargs: dict[str, object],
    kind: type[Exception],
    expected: str,
) -> None:
    model = BatchSizes()
    message = error_message(
        kind,
        lambda: predict_raster(model, _scene(write_raster), tmp_path / "o.tif", **kwargs),  # type: ignore[arg-type]
    )
    assert message == expected
    assert model.calls == [] and not (tmp_path / "o.tif").exists()


def test_a_model_in_training_mode_is_refused(tmp_path: Path, write_raster: WriteRaster) -> None:
    model = BatchSizes().train()
    message = error_message(
        ValueError, lambda: predict_raster(model, _scene(write_raster), tmp_path / "o.tif")
    )
    assert message == (
        "predict_raster got a model in training mode (dropout and batch norm would use batch "
        "statistics). Call model.eval() first."
    )
    assert model.calls == []


def test_without_rasterio_predict_raster_names_itself(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _scene(write_raster)
    monkeypatch.setitem(sys.modules, "rasterio", None)  # `import rasterio` raises ImportError
    message = error_message(
        MissingDependencyError, lambda: predict_raster(BatchSizes(), src, tmp_path / "o.tif")
    )
    assert message == (
        "rasterio is required for geofm.geo.predict_raster. Install it with: pip install rasterio."
    )


def test_one_pixel_tiles_are_allowed(tmp_path: Path, write_raster: WriteRaster) -> None:
    values = np.random.default_rng(1).random((3, 3, 4), dtype=np.float32)
    out = predict_raster(
        nn.Identity().eval(),
        write_raster(values),
        tmp_path / "o.tif",
        tile=1,
        overlap=0,
        output="regression",
    )
    with rasterio.open(out) as r:
        np.testing.assert_array_equal(r.read(), values)


def test_the_default_tile_follows_the_model_s_spatial_multiple(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    model = BatchSizes()
    model.input_spec = InputSpec.unknown(3, multiple=14)  # type: ignore[assignment]
    predict_raster(model, _scene(write_raster, 260, 260), tmp_path / "o.tif", output="regression")
    assert {edge for _, edge in model.calls} == {252}  # 256 rounded down to a multiple of 14


def test_output_path_errors_name_predict_raster(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = _scene(write_raster)
    model = BatchSizes()
    assert error_message(ValueError, lambda: predict_raster(model, src, src)) == (
        f"Output '{src}' of geofm.geo.predict_raster is its input '{src}' (the same file, "
        "possibly through '..', a symbolic link or a hard link); writing it would destroy the "
        "input. Choose another output path."
    )
    taken = tmp_path / "taken.tif"
    taken.write_bytes(b"")
    assert error_message(FileExistsError, lambda: predict_raster(model, src, taken)) == (
        f"Output '{taken}' of geofm.geo.predict_raster already exists. Pass overwrite=True to "
        "replace it."
    )
    assert model.calls == []


def test_source_errors_name_the_source(tmp_path: Path, write_raster: WriteRaster) -> None:
    model = BatchSizes()
    plain = write_raster(np.ones((3, 8, 8), np.float32), "plain.tif", crs=None)
    assert error_message(ValueError, lambda: predict_raster(model, plain, tmp_path / "o.tif")) == (
        f"Raster '{plain}' has no CRS, but geofm.geo.predict_raster needs a georeferenced "
        "source (its output must carry the source's CRS). Assign one first, e.g. "
        f"`rio edit-info --crs EPSG:32618 {plain}`. To predict an ungeoreferenced image anyway "
        "(the output then has no CRS), pass allow_ungeoreferenced=True."
    )
    src = _scene(write_raster)
    message = error_message(
        ShapeError, lambda: predict_raster(model, src, tmp_path / "o.tif", bands=[4])
    )
    assert message == (
        f"Band indices [4] are out of range for {src}, which has 3 bands "
        "(indices are 1-based: 1..3)."
    )
    assert model.calls == []


def _mixed_vrt(tmp_path: Path) -> Path:
    """A georeferenced VRT of a float32 band and a complex64 band."""
    real = write_geotiff(tmp_path / "real.tif", np.full((1, 8, 8), 2, dtype="float32"))
    sar = write_geotiff(tmp_path / "sar.tif", np.full((1, 8, 8), 1 + 1j, dtype="complex64"))
    bands = "".join(
        f'<VRTRasterBand dataType="{kind}" band="{i}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for i, (kind, name) in enumerate([("Float32", real.name), ("CFloat32", sar.name)], 1)
    )
    vrt = tmp_path / "mixed.vrt"
    with rasterio.open(real) as r:
        srs, gt = r.crs.to_wkt(), ", ".join(str(v) for v in r.transform.to_gdal())
    vrt.write_text(
        f'<VRTDataset rasterXSize="8" rasterYSize="8"><SRS>{srs}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>"
    )
    return vrt


def test_only_the_chosen_bands_decide_whether_pixels_are_complex(tmp_path: Path) -> None:
    vrt = _mixed_vrt(tmp_path)
    model = nn.Identity().eval()
    out = predict_raster(
        model, vrt, tmp_path / "a.tif", tile=8, overlap=0, bands=[1], output="regression"
    )
    with rasterio.open(out) as r:
        np.testing.assert_array_equal(r.read(), np.full((1, 8, 8), 2, dtype="float32"))
    message = error_message(
        ValueError,
        lambda: predict_raster(model, vrt, tmp_path / "b.tif", tile=8, overlap=0, bands=[2, 1]),
    )
    assert message == (
        f"Raster '{vrt}' has complex pixels (complex64, float32), which a model cannot take as "
        "is. Convert it first (e.g. to amplitude, or to real and imaginary bands)."
    )


def test_the_model_s_output_spec_colours_make_the_colour_table(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = _scene(write_raster)
    model = Channels(3, 3)
    colours = ((38, 70, 83), (233, 196, 106), (231, 111, 81))
    model.output_spec = OutputSpec("segmentation", 3, colors=colours)  # type: ignore[assignment]
    out = predict_raster(model, src, tmp_path / "a.tif", tile=16, overlap=4)
    table = _colour_table(out)
    assert [table[k] for k in range(3)] == [(*c, 255) for c in colours]
    # An explicit colormap replaces the model's colours; classes it leaves out keep the
    # default palette.
    out = predict_raster(
        model, src, tmp_path / "b.tif", tile=16, overlap=4, colormap={1: (1, 2, 3)}
    )
    table = _colour_table(out)
    expected = [(*FIRST_COLOURS[0], 255), (1, 2, 3, 255), (*FIRST_COLOURS[2], 255)]
    assert [table[k] for k in range(3)] == expected
    # An output spec without colours leaves the default palette.
    model.output_spec = OutputSpec("segmentation", 3)  # type: ignore[assignment]
    out = predict_raster(model, src, tmp_path / "c.tif", tile=16, overlap=4)
    table = _colour_table(out)
    assert [table[k] for k in range(3)] == [(*c, 255) for c in FIRST_COLOURS[:3]]


class CreatesFile(nn.Module):
    """An identity whose first forward pass writes ``path``: another writer racing the run."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.path.exists():
            self.path.write_bytes(b"theirs")
        return x


def test_an_output_created_during_the_run_is_kept_and_the_run_fails(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    dst = tmp_path / "o.tif"
    model = CreatesFile(dst)
    message = error_message(
        FileExistsError,
        lambda: predict_raster(model, _scene(write_raster), dst, tile=16, overlap=4),
    )
    assert message == (
        f"Output '{dst}' of geofm.geo.predict_raster was created by another writer while this "
        "run was writing it; it was left as it is and this run's result was discarded. Pass "
        "overwrite=True to replace it."
    )
    assert dst.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
