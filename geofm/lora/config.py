"""LoRA configuration and the presets of the source pipelines.

References:
    - Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
      https://arxiv.org/abs/2106.09685
    - Kalajdzievski, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA", 2023.
      https://arxiv.org/abs/2312.03732
    - EcoVision-LoRA: https://github.com/bayramos/Ecovision-LoRA (notebooks 4a/4b).
    - Fusion-LoRA: https://github.com/Eyobed-Abby/fusion-lora-skysense
      (branch ``feature/clip-visual-lora``, ``fusion_lora/clip_lora_injector.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

from torch import nn

from geofm.lora.layers import UnsupportedModuleError

__all__ = [
    "LoRAConfig",
    "QKVPart",
    "ecovision_config",
    "fusion_lora_config",
]

QKVPart = Literal["q", "k", "v"]
"""One third of a fused query/key/value projection."""

_QKV_ORDER: tuple[QKVPart, ...] = ("q", "k", "v")

# Layer types LoRA can wrap, by the name stored in saved configs. Extended with the wrapper table.
_TYPE_NAMES: dict[str, type[nn.Module]] = {"Linear": nn.Linear, "Conv2d": nn.Conv2d}


def _as_str_tuple(value: Sequence[str], *, field_name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(
            f"LoRAConfig.{field_name} must be a sequence of patterns, got the string {value!r}. "
            f"Write {field_name}=({value!r},)."
        )
    out = tuple(value)
    bad = [v for v in out if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(
            f"LoRAConfig.{field_name} must hold non-empty strings, got {bad!r}. "
            "Pass module-name patterns such as 'blocks.*.attn.qkv'."
        )
    return out


@dataclass(frozen=True)
class LoRAConfig:
    """Where and how :func:`~geofm.lora.apply_lora` injects LoRA adapters.

    A module is adapted when its dotted name matches one of ``targets`` (and
    none of ``exclude``) and, if ``target_types`` is given, it is an instance of
    one of them. A pattern is an :mod:`fnmatch` glob matched against the full
    name or any dotted suffix of it, so ``"qkv"`` matches ``blocks.0.attn.qkv``
    and ``"blocks.*.attn.proj"`` matches every attention output projection.

    Each adapted layer computes ``y = W0 x + b0 + s * B A dropout(x)`` with
    ``A`` of shape ``(rank, in)`` (Kaiming-uniform), ``B`` of shape
    ``(out, rank)`` (zeros) and ``s = alpha / rank`` (``alpha / sqrt(rank)``
    with ``use_rslora``).

    Fused ``qkv`` projections (modules matching ``qkv_names``): with the default
    ``qkv_parts=("q", "k", "v")`` the whole fused Linear gets one adapter (what
    PEFT and EcoVision do). A strict subset such as ``("q", "v")`` gives each
    selected third its own rank-``rank`` adapter (the LoRA paper's ``W_q``,
    ``W_v``) and leaves the other thirds untouched, without splitting the module.

    Args:
        rank: LoRA rank ``r``, at least 1.
        alpha: Scaling numerator ``alpha`` (> 0).
        dropout: Dropout probability on the adapter input, in ``[0, 1)``.
        targets: Module-name globs to adapt.
        target_types: Keep only matched modules of these types (e.g.
            ``(nn.Linear,)`` with ``targets=("layers.2.*",)``). Empty: every
            matched module must be a supported layer.
        exclude: Module-name globs never adapted, even if matched.
        qkv_parts: Which thirds of fused qkv projections to adapt.
        qkv_names: Globs naming the fused qkv projections ``qkv_parts`` applies to.
        use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.
        also: Module-name globs trained and saved in full next to the adapters
            (PEFT's ``modules_to_save``), e.g. ``("head",)``.

    Raises:
        ValueError: On an out-of-range number, an empty or string-valued
            pattern list, or unknown / repeated ``qkv_parts``.
        UnsupportedModuleError: If a ``target_types`` entry is not a supported layer type.

    Example:
        >>> cfg = LoRAConfig(rank=4, alpha=8.0, qkv_parts=("q", "v"))
        >>> cfg.scaling
        2.0
        >>> LoRAConfig.from_json(cfg.to_json()) == cfg
        True
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("qkv",)
    target_types: tuple[type[nn.Module], ...] = ()
    exclude: tuple[str, ...] = ()
    qkv_parts: tuple[QKVPart, ...] = ("q", "k", "v")
    qkv_names: tuple[str, ...] = ("qkv",)
    use_rslora: bool = False
    also: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRAConfig.rank must be an integer >= 1, got {self.rank!r}.")
        if not self.alpha > 0:
            raise ValueError(f"LoRAConfig.alpha must be > 0, got {self.alpha!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRAConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        for name in ("targets", "exclude", "qkv_names", "also"):
            object.__setattr__(self, name, _as_str_tuple(getattr(self, name), field_name=name))
        if not self.targets:
            raise ValueError("LoRAConfig.targets is empty. Pass at least one module-name pattern.")
        parts = tuple(self.qkv_parts)
        if (
            isinstance(cast(object, self.qkv_parts), str)
            or not parts
            or len(set(parts)) != len(parts)
        ):
            raise ValueError(
                f"LoRAConfig.qkv_parts must be a non-empty tuple of distinct 'q', 'k', 'v', "
                f"got {self.qkv_parts!r}."
            )
        unknown = [p for p in parts if p not in get_args(QKVPart)]
        if unknown:
            raise ValueError(
                f"LoRAConfig.qkv_parts has unknown parts {unknown!r}; expected a subset of "
                "('q', 'k', 'v')."
            )
        object.__setattr__(self, "qkv_parts", tuple(p for p in _QKV_ORDER if p in parts))
        types = tuple(self.target_types)
        bad = [t for t in types if not isinstance(t, type) or not issubclass(t, nn.Module)]
        bad += [t for t in types if t not in bad and not _supported_base(t)]
        if bad:
            raise UnsupportedModuleError(
                f"LoRAConfig.target_types has unsupported entries {bad!r}. "
                f"Supported layer types: {', '.join(sorted(_TYPE_NAMES))}."
            )
        object.__setattr__(self, "target_types", types)

    @property
    def scaling(self) -> float:
        """The factor ``s`` multiplying ``B A x``: ``alpha / rank`` or ``alpha / sqrt(rank)``."""
        return self.alpha / (self.rank**0.5 if self.use_rslora else self.rank)

    @property
    def adapts_all_qkv_parts(self) -> bool:
        """Whether fused qkv layers are adapted as a whole (one adapter)."""
        return self.qkv_parts == _QKV_ORDER

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in saved adapter files).

        Returns:
            The config as JSON, layer types by name (``"Linear"``, ``"Conv2d"``).
        """
        data: dict[str, Any] = asdict(self)
        data["target_types"] = [_type_name(t) for t in self.target_types]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LoRAConfig:
        """Rebuild a config written by :meth:`to_json`.

        Args:
            text: JSON produced by :meth:`to_json`.

        Returns:
            The equal config.

        Raises:
            ValueError: If the JSON has unknown or missing fields.
            UnsupportedModuleError: If a layer type name is not supported.
        """
        data = json.loads(text)
        expected = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or set(data) != expected:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"Stored LoRA config has fields {got}, expected {sorted(expected)}. "
                "It was written by an incompatible geofm version."
            )
        unknown = [n for n in data["target_types"] if n not in _TYPE_NAMES]
        if unknown:
            raise UnsupportedModuleError(
                f"Stored LoRA config names unsupported layer types {unknown}. "
                f"Supported: {', '.join(sorted(_TYPE_NAMES))}."
            )
        data["target_types"] = tuple(_TYPE_NAMES[n] for n in data["target_types"])
        for name in ("targets", "exclude", "qkv_parts", "qkv_names", "also"):
            data[name] = tuple(data[name])
        return cls(**data)


def _supported_base(t: type[nn.Module]) -> bool:
    return any(issubclass(t, base) for base in _TYPE_NAMES.values())


def _type_name(t: type[nn.Module]) -> str:
    for name, base in _TYPE_NAMES.items():
        if t is base:
            return name
    raise UnsupportedModuleError(
        f"Layer type {t.__qualname__} cannot be stored in a LoRA config; "
        f"use one of {', '.join(sorted(_TYPE_NAMES))}."
    )


def ecovision_config(*, city: Literal["shanghai", "las_vegas"] = "shanghai") -> LoRAConfig:
    """LoRA placement of EcoVision-LoRA on a timm DINOv2 ViT.

    Adapts ``blocks.*.attn.qkv`` and ``blocks.*.attn.proj`` (not the patch
    embedding), dropout 0.05, and trains/saves the regression ``head``.
    Shanghai uses r 8 / alpha 16, Las Vegas r 32 / alpha 64. On
    ``vit_base_patch14_dinov2`` that is 442,368 (Shanghai) or 1,769,472
    (Las Vegas) LoRA parameters.

    Args:
        city: Which notebook's setting: ``"shanghai"`` (4a) or ``"las_vegas"`` (4b).

    Returns:
        The config.

    Raises:
        ValueError: If ``city`` is unknown.

    Example:
        >>> ecovision_config(city="las_vegas").rank
        32
    """
    ranks = {"shanghai": (8, 16.0), "las_vegas": (32, 64.0)}
    if city not in ranks:
        raise ValueError(f"Unknown EcoVision city {city!r}; expected one of {sorted(ranks)}.")
    rank, alpha = ranks[city]
    return LoRAConfig(
        rank=rank,
        alpha=alpha,
        dropout=0.05,
        targets=("blocks.*.attn.qkv", "blocks.*.attn.proj"),
        also=("head",),
    )


def fusion_lora_config(*, stages: Sequence[int] = (2, 3)) -> LoRAConfig:
    """LoRA placement of Fusion-LoRA (branch ``feature/clip-visual-lora``) on a timm SwinV2.

    Every ``nn.Linear`` inside the given 0-based stages (``layers.<i>`` in
    timm's ``SwinTransformerV2``): attention qkv and proj, the
    continuous-position-bias MLP, the FFN and the stage's patch-merging
    ``reduction``; r 8 / alpha 16, no dropout. timm's SwinV2 reads
    ``attn.qkv.weight`` directly; geofm's wrapper then returns the adapted
    weight, so the qkv adapter takes effect (see :class:`~geofm.lora.LoRALinear`).

    Args:
        stages: 0-based stage indices.

    Returns:
        The config.

    Raises:
        ValueError: If ``stages`` is empty or holds negative or repeated indices.

    Example:
        >>> fusion_lora_config().targets
        ('layers.2.*', 'layers.3.*')
    """
    idx = tuple(stages)
    if not idx or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in idx):
        raise ValueError(f"stages must be non-negative stage indices, got {stages!r}.")
    if len(set(idx)) != len(idx):
        raise ValueError(f"stages has repeated indices: {stages!r}.")
    return LoRAConfig(
        rank=8,
        alpha=16.0,
        dropout=0.0,
        targets=tuple(f"layers.{i}.*" for i in idx),
        target_types=(nn.Linear,),
    )
