"""The ``geofm`` command: list and describe registry entries, run the demo.

Sub-commands:

- ``geofm list [PATTERN] [--weights | --sensors]``: registered backbones (or
  weights, or sensors) matching an ``fnmatch`` glob;
- ``geofm info NAME``: what a backbone / weights / sensor name is, or, for a
  raster file, its size, bands, dtype, CRS, resolution, nodata and the catalog
  sensors with its band count;
- ``geofm demo``: train a registry backbone + LoRA + head on the embedded
  Landsat 7 scene, save and reload it, and write metrics, a map and a plot;
- ``geofm tile SRC OUT_DIR``: split a raster into georeferenced tiles plus an index
  (with a progress bar; ``--no-progress`` silences it);
- ``geofm predict MODEL SRC DST``: whole-scene sliding-window prediction of a
  model saved with :func:`geofm.hub.save_pretrained` (a folder or a hub repo)
  to a tiled GeoTIFF; under ``torchrun`` the windows are sharded across ranks;
- ``geofm --version``.

Example:
    >>> main(["list", "resnet*"])
    resnet18
    resnet50
    0
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geofm._version import __version__

__all__ = ["main"]


def _cmd_list(args: argparse.Namespace) -> int:
    if args.sensors:
        from geofm.sensors import list_sensors

        names = list_sensors(args.pattern)
    elif args.weights:
        from geofm.hub.info import format_weights_table

        print(format_weights_table(args.pattern))
        return 0
    else:
        from geofm.backbones import list_backbones

        names = list_backbones(args.pattern)
    for name in names:
        print(name)
    return 0


def _print_rows(*rows: tuple[str, object], width: int = 10) -> None:
    """``label   value`` lines, values starting at column ``width`` (or after the longest label)."""
    width = max(width, *(len(label) + 2 for label, _ in rows))
    for label, value in rows:
        print(f"{label:<{width}}{value}")


def _describe_raster(path: Path) -> None:
    from geofm.geo._rio import import_rasterio
    from geofm.sensors import SENSORS

    rasterio = import_rasterio("geofm info")
    try:
        dataset = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise ValueError(f"{path} is not a raster GDAL can read ({err}).") from None
    with dataset:
        res = dataset.res
        _print_rows(
            ("raster", path),
            ("size", f"{dataset.width} x {dataset.height} pixels, {dataset.count} bands"),
            ("dtype", ", ".join(sorted(set(dataset.dtypes)))),
            ("crs", dataset.crs.to_string() if dataset.crs else "none"),
            ("resolution", f"{res[0]:g} x {res[1]:g} (CRS units)"),
            ("nodata", dataset.nodata),
            width=12,
        )
        for i, desc in enumerate(dataset.descriptions, start=1):
            print(f"  band {i:<3} {dataset.dtypes[i - 1]:<8} {desc or '(no description)'}")
    matches = [n for n, s in SENSORS.items() if s.num_bands == dataset.count]
    label = f"{', '.join(sorted(matches)) or 'none'} (catalog sensors with {dataset.count} bands)"
    _print_rows(("sensors", label), width=12)


def _cmd_info(args: argparse.Namespace) -> int:
    from geofm.backbones.base import BACKBONES
    from geofm.sensors import SENSORS
    from geofm.weights.catalog import WEIGHTS

    name = args.name
    if Path(name).is_file():
        _describe_raster(Path(name))
        return 0
    if name in BACKBONES:
        entry = BACKBONES.get(name)
        _print_rows(
            ("backbone", name),
            ("family", entry.family),
            ("about", entry.description),
            ("in_chans", f"{entry.default_in_chans} (pretrained bands: {entry.pretrained_bands})"),
            ("kwargs", ", ".join(entry.accepted_kwargs())),
        )
        return 0
    if name in WEIGHTS:
        from geofm.hub.info import describe_weights

        print(describe_weights(name))
        return 0
    if name in SENSORS:
        sensor = SENSORS.get(name)
        _print_rows(
            ("sensor", f"{name}: {sensor.description}"),
            ("gsd", f"{sensor.gsd} m, scaling {sensor.scaling.summary()}"),
        )
        for i, band in enumerate(sensor.bands):
            print(f"  {band:<8} {sensor.wavelengths[i]:8.1f} nm")
        return 0
    known = sorted({*BACKBONES.list(), *WEIGHTS.list(), *SENSORS.list()})
    import difflib

    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"{name!r} is neither a registered name nor a raster file.{hint} See `geofm list`."
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from geofm.demo import run_demo

    result = run_demo(
        args.output_dir, steps=args.steps, backbone=args.backbone, seed=args.seed, plot=args.plot
    )
    print(
        f"validation mean IoU {result['val_miou']:.3f} "
        f"(majority-class baseline {result['majority_baseline_miou']:.3f}), "
        f"pixel accuracy {result['val_pixel_accuracy']:.3f}"
    )
    for kind, path in result["outputs"].items():
        print(f"{kind:<8} {path}")
    return 0


def _cmd_tile(args: argparse.Namespace) -> int:
    from geofm.geo import tile_raster

    out_dir = Path(args.out_dir)
    index = Path(args.index) if args.index else out_dir / "index.geojson"
    if not Path(args.src).is_file():
        raise ValueError(f"the input raster {args.src} does not exist.")
    out_dir.mkdir(parents=True, exist_ok=True)
    tiles = tile_raster(
        args.src,
        size=args.size,
        stride=args.stride,
        pad=args.pad,
        out_dir=out_dir,
        index_path=index,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(f"{len(tiles)} tiles in {out_dir}, index {index}")
    return 0


def _parse_bands(text: str | None) -> list[int | str] | None:
    """``--bands``: comma-separated 1-based indices or band names (not a mix)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise ValueError(
            f"--bands has an empty entry: {text!r}. Use e.g. --bands 3,2,1 or B04,B03,B02."
        )
    if all(t.isdigit() for t in items):
        return [int(t) for t in items]
    if any(t.isdigit() for t in items):
        raise ValueError(f"--bands mixes indices and names: {text!r}. Use one kind.")
    return list(items)


def _check_device(text: str) -> str:
    """``--device``: a device string torch knows and that this machine has."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(
            f"--device {text!r} is not a device name; use cpu, cuda, cuda:1 or mps."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text}: no CUDA GPU is available here; use --device cpu.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {text}: MPS is not available here; use --device cpu.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {text}: geofm predict runs on cpu, cuda or mps.")
    return text


def _check_output_folder(dst: str) -> None:
    import os

    folder = Path(dst).expanduser().resolve().parent
    if not folder.is_dir():
        raise ValueError(f"the output folder {folder} does not exist; create it first.")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"the output folder {folder} is not writable.")


def _cmd_predict(args: argparse.Namespace) -> int:
    import os

    import torch
    import torch.distributed as dist

    from geofm.geo import predict_raster, predict_rasters
    from geofm.hub.rebuild import from_pretrained

    bands = _parse_bands(args.bands)
    _check_device(args.device)
    many = (
        any(c in args.src for c in "*?[")
        or args.dst.endswith(("/", os.sep))
        or (Path(args.dst).is_dir())
    )
    if many:
        if not Path(args.dst).is_dir():
            _check_output_folder(args.dst.rstrip("/" + os.sep))  # its parent must exist
    else:
        if not Path(args.src).is_file():
            raise ValueError(f"the input raster {args.src} does not exist.")
        _check_output_folder(args.dst)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if distributed:
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
        if args.device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        model = from_pretrained(args.model).eval().to(args.device)
        options: dict[str, Any] = {
            "tile": args.tile,
            "overlap": args.overlap,
            "batch_size": args.batch_size,
            "blend": args.blend,
            "output": args.output,
            "device": args.device,
            "bands": bands,
            "input_spec": "model" if args.input_spec else None,
            "progress": not args.no_progress,
            "overwrite": args.overwrite,
            "precision": args.precision,
            "channels_last": args.channels_last,
            "allow_ungeoreferenced": args.allow_ungeoreferenced,
        }
        if many:
            outs = predict_rasters(model, args.src, args.dst, **options)
            print(f"{len(outs)} maps in {args.dst}")
            return 0
        out = predict_raster(model, args.src, args.dst, **options)
    finally:
        if distributed:
            dist.destroy_process_group()
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``geofm`` command.

    Returns:
        The parser.

    Example:
        >>> build_parser().parse_args(["info", "resnet18"]).name
        'resnet18'
    """
    parser = argparse.ArgumentParser(prog="geofm", description="Geospatial foundation models.")
    parser.add_argument("--version", action="version", version=f"geofm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="list registered backbones, weights or sensors")
    p_list.add_argument("pattern", nargs="?", default="*", help="fnmatch glob (default: *)")
    kind = p_list.add_mutually_exclusive_group()
    kind.add_argument("--weights", action="store_true", help="list the weights catalog")
    kind.add_argument("--sensors", action="store_true", help="list the sensor catalog")
    p_list.set_defaults(func=_cmd_list)

    p_info = sub.add_parser(
        "info", help="describe a backbone, weights or sensor name, or a raster file"
    )
    p_info.add_argument(
        "name", help="registered name (see `geofm list`) or path of a raster (GeoTIFF, ...)"
    )
    p_info.set_defaults(func=_cmd_info)

    p_demo = sub.add_parser(
        "demo", help="train backbone + LoRA + head on the embedded scene, save, reload, map it"
    )
    p_demo.add_argument("--output-dir", default="geofm-demo", help="default: ./geofm-demo")
    p_demo.add_argument("--steps", type=int, default=60)
    p_demo.add_argument("--backbone", default="resnet18")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument(
        "--plot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write demo.png (needs matplotlib, the examples extra); default: on",
    )
    p_demo.set_defaults(func=_cmd_demo)

    from typing import get_args

    from geofm.geo import BlendMode, OutputMode, TilePadding

    p_tile = sub.add_parser("tile", help="split a raster into georeferenced tiles + an index")
    p_tile.add_argument("src", help="raster to split")
    p_tile.add_argument("out_dir", help="folder for the tiles (created if needed)")
    p_tile.add_argument("--size", type=int, default=256)
    p_tile.add_argument("--stride", type=int, default=None, help="default: --size")
    p_tile.add_argument("--pad", choices=get_args(TilePadding), default="zero")
    p_tile.add_argument("--index", default=None, help="default: OUT_DIR/index.geojson")
    p_tile.add_argument(
        "--overwrite", action="store_true", help="replace tiles of an earlier run in OUT_DIR"
    )
    p_tile.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_tile.set_defaults(func=_cmd_tile)

    p_pred = sub.add_parser("predict", help="sliding-window prediction of a saved model")
    p_pred.add_argument("model", help="folder written by save_pretrained, or a hub repo id")
    p_pred.add_argument(
        "src",
        help="input raster (GeoTIFF or any GDAL raster), or a quoted glob such as 'scenes/*.tif' "
        "for many scenes (sharded across torchrun ranks, resumable)",
    )
    p_pred.add_argument(
        "dst", help="output GeoTIFF (its folder must exist), or a folder (ending in /) for many"
    )
    p_pred.add_argument(
        "--tile",
        type=int,
        default=None,
        help="tile edge in pixels (default: 256 rounded down to the model's multiple, 252 for "
        "DINOv2)",
    )
    p_pred.add_argument("--overlap", type=int, default=32)
    p_pred.add_argument("--batch-size", type=int, default=8)
    p_pred.add_argument("--blend", choices=get_args(BlendMode), default="cosine")
    p_pred.add_argument("--output", choices=get_args(OutputMode), default="class")
    p_pred.add_argument("--device", default="cpu")
    p_pred.add_argument(
        "--bands",
        default=None,
        help="bands fed to the model: 1-based indices (3,2,1) or names from the raster's band "
        "descriptions (B04,B03,B02); default: the model's bands by name, else all",
    )
    p_pred.add_argument(
        "--input-spec",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="prepare input with the model's saved input spec (value scaling, mean/std); "
        "--no-input-spec feeds stored values as float32",
    )
    p_pred.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="forward pass precision (autocast; blending stays float32); default fp32",
    )
    p_pred.add_argument(
        "--channels-last", action="store_true", help="channels_last tiles (convolutional models)"
    )
    p_pred.add_argument(
        "--allow-ungeoreferenced",
        action="store_true",
        help="accept an input without CRS or geotransform (the map then has none)",
    )
    p_pred.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p_pred.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_pred.set_defaults(func=_cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geofm`` command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit code.

    Example:
        >>> main(["info", "resnet18"])  # doctest: +ELLIPSIS
        backbone  resnet18
        ...
        0
    """
    import os

    from geofm.errors import GeofmError

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (GeofmError, ValueError, TypeError, OSError, RuntimeError) as err:
        if os.environ.get("GEOFM_DEBUG"):
            raise
        print(f"geofm {args.command}: error: {_cli_words(str(err))}", file=sys.stderr)
        return 1
    return code


# Library argument spellings in messages, as the command line spells them.
_CLI_WORDS = (
    ("overwrite=True", "--overwrite"),
    ("allow_ungeoreferenced=True", "--allow-ungeoreferenced"),
    ("input_spec=None", "--no-input-spec"),
    ("batch_size", "--batch-size"),
    ("bands=", "--bands "),
    ("tile=", "--tile "),
    ("overlap=", "--overlap "),
    ("precision=", "--precision "),
)


_LIBRARY_FUNCTION = re.compile(r" of geofm\.[a-z_.]+\.[a-z_]+(?=[ :;,.])")


def _cli_words(message: str) -> str:
    """``message`` on one line, with keyword-argument spellings replaced by the flags.

    The library function a message names (``Output 'o.tif' of geofm.geo.predict_raster
    is ...``) is dropped: on the command line the command itself is the context.
    """
    message = _LIBRARY_FUNCTION.sub("", message)
    for library, flag in _CLI_WORDS:
        message = message.replace(library, flag)
    return " ".join(message.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
