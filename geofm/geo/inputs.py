"""From a raster's bands to a model's input: the :class:`~geofm.InputSpec` side of prediction.

:func:`geofm.geo.predict_raster` reads a model's ``input_spec`` and uses these
helpers to pick the raster bands the model expects (by name from the band
descriptions, else by the user's ``bands=``, else by count with a logged
assumption), to choose a tile size the model accepts, and to apply the spec's
value scaling and normalisation to every tile.

Reference: torchgeo applies a weight's ``transforms`` before its model; timm's
``resolve_data_config`` turns a ``pretrained_cfg`` into the same preprocessing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from geofm.errors import ShapeError
from geofm.input_spec import InputSpec
from geofm.sensors import get_sensor, list_sensors

__all__ = ["DEFAULT_TILE", "PreparedModel", "choose_bands", "choose_tile", "model_input_spec"]

logger = logging.getLogger(__name__)

#: Tile edge predict_raster aims for when none is given (rounded to the model's multiple).
DEFAULT_TILE = 256


class PreparedModel(nn.Module):
    """``model(spec.prepare(x))``: a model with its input contract applied in front.

    Args:
        model: The model (any ``nn.Module`` taking ``(N, C, H, W)``).
        spec: The :class:`~geofm.InputSpec` whose scaling and statistics to apply.

    Shape:
        - Input: raw values ``(N, C, H, W)``, ``C = spec.num_bands``.
        - Output: the model's output.

    Example:
        >>> spec = InputSpec(num_bands=1, mean=(2.0,), std=(4.0,))
        >>> PreparedModel(nn.Identity(), spec)(torch.full((1, 1, 2, 2), 10.0))[0, 0, 0, 0].item()
        2.0
    """

    def __init__(self, model: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for raw values ``x``."""
        out: torch.Tensor = self.model(self.spec.prepare(x))
        return out


def model_input_spec(model: nn.Module) -> InputSpec | None:
    """The model's ``input_spec`` when it has one, else ``None``.

    Args:
        model: Any module (task models and backbones of geofm have one).

    Returns:
        The :class:`~geofm.InputSpec` or ``None``.

    Example:
        >>> model_input_spec(nn.Identity()) is None
        True
    """
    try:
        spec = getattr(model, "input_spec", None)
    except AttributeError:  # a task model whose backbone has none
        return None
    return spec if isinstance(spec, InputSpec) else None


def choose_tile(spec: InputSpec | None, tile: int | None) -> int:
    """The tile edge to predict with: ``tile``, or the default rounded to the model's multiple.

    Args:
        spec: The model's input spec, or ``None``.
        tile: Tile edge asked for, or ``None`` for :data:`DEFAULT_TILE` rounded
            down to a multiple of ``spec.multiple``.

    Returns:
        The tile edge in pixels.

    Raises:
        ValueError: If ``tile`` is given and not a size the model accepts (the
            message names the nearest valid sizes).

    Example:
        >>> choose_tile(InputSpec.unknown(3, multiple=14), None)
        252
        >>> choose_tile(None, 100)
        100
    """
    if tile is None:
        return DEFAULT_TILE if spec is None else spec.round_size(DEFAULT_TILE)
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}.")
    if spec is not None and (tile % spec.multiple or tile < spec.min_size):
        below = spec.round_size(tile)
        above = max(below + spec.multiple, spec.min_size)
        raise ValueError(
            f"tile={tile} does not suit the model: it needs a multiple of {spec.multiple} of at "
            f"least {spec.min_size} pixels. Use tile={below} or tile={above} (or leave tile "
            "unset)."
        )
    return tile


def _canonical(name: str, sensor: str | None) -> str:
    """``name`` as its sensor's catalog identifier when a sensor knows it, else stripped."""
    name = name.strip()
    if sensor is not None and sensor in list_sensors():
        record = get_sensor(sensor)
        try:
            return record.bands[record.band_index(name)]
        except LookupError:
            return name
    return name


def choose_bands(
    spec: InputSpec | None,
    descriptions: Sequence[str | None],
    bands: Sequence[int | str] | None,
    source: object,
) -> list[int]:
    """The 1-based raster bands to feed the model, in the model's order.

    Rules, in order: ``bands`` given as 1-based indices are used as they are;
    ``bands`` given as names are found in the raster's band descriptions (through
    the spec's sensor aliases: ``B4``, ``B04``, ``red``); without ``bands``, a
    spec with named bands finds them in the descriptions; else a raster with
    exactly the spec's band count is used in file order (logged as an
    assumption); else every band when there is no spec.

    Args:
        spec: The model's input spec, or ``None``.
        descriptions: One description per raster band (``None`` when absent).
        bands: The user's choice, or ``None``.
        source: The raster, for messages.

    Returns:
        1-based band indices.

    Raises:
        ShapeError: If an index is out of range, a name is not described by
            the raster, or the count differs from the spec's.
        ValueError: If ``bands`` mixes names and indices or is empty.

    Example:
        >>> spec = InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03", "B02"])
        >>> choose_bands(spec, ["B02", "B03", "B04", "B08"], None, "scene.tif")
        [3, 2, 1]
        >>> choose_bands(spec, [None] * 4, ["red", "green", "blue"], "scene.tif")
        Traceback (most recent call last):
        ...
        geofm.errors.ShapeError: Band 'red' is not among the band descriptions of ...
    """
    count = len(descriptions)
    sensor = spec.sensor if spec is not None else None
    if bands is not None:
        chosen = list(bands)
        if not chosen:
            raise ValueError("bands must name at least one band, got an empty list.")
        if all(isinstance(b, str) for b in chosen):
            described = [_canonical(d, sensor) if d else None for d in descriptions]
            indices = []
            for name in chosen:
                key = _canonical(str(name), sensor)
                if key not in described:
                    raise ShapeError(
                        f"Band {name!r} is not among the band descriptions of {source!s} "
                        f"({', '.join(str(d) for d in descriptions)}). Pass 1-based band "
                        "indices instead, e.g. bands=[3, 2, 1]."
                    )
                indices.append(described.index(key) + 1)
        elif all(isinstance(b, int) and not isinstance(b, bool) for b in chosen):
            indices = [int(b) for b in chosen]
            bad = [i for i in indices if not 1 <= i <= count]
            if bad:
                raise ShapeError(
                    f"Band indices {bad} are out of range for {source!s}, which has {count} "
                    f"bands (indices are 1-based: 1..{count})."
                )
        else:
            raise ValueError(f"bands must be all names or all 1-based indices, got {chosen!r}.")
        if spec is not None and len(indices) != spec.num_bands:
            raise ShapeError(
                f"bands selects {len(indices)} bands but the model expects {spec.num_bands}."
            )
        return indices
    if spec is None:
        return list(range(1, count + 1))
    positions = spec.band_positions(descriptions)
    if positions is not None:
        return [p + 1 for p in positions]
    if count == spec.num_bands:
        if spec.bands is not None:
            logger.warning(
                "%s does not describe its bands; assuming they are the model's bands in "
                "order: %s. Pass bands= to choose them.",
                source,
                ", ".join(spec.bands),
            )
        return list(range(1, count + 1))
    expected = f" ({', '.join(spec.bands)})" if spec.bands is not None else ""
    raise ShapeError(
        f"{source!s} has {count} bands but the model expects {spec.num_bands}{expected}. "
        "Pass bands= (names or 1-based indices) to choose them."
    )
