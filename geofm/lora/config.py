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
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

from torch import nn

from geofm.errors import UnsupportedModuleError

__all__ = [
    "LoRAConfig",
    "LoRAInitA",
    "QKVPart",
    "check_lora_hparams",
    "ecovision_config",
    "fusion_lora_config",
    "lora_scaling",
]

QKVPart = Literal["q", "k", "v"]
"""One third of a fused query/key/value projection."""

_QKV_ORDER: tuple[QKVPart, ...] = ("q", "k", "v")

LoRAInitA = Literal["kaiming", "kaiming_rank"]
"""How ``A`` is drawn: fan-in ``in`` (LoRA, PEFT) or ``rank`` (EcoVision's notebooks)."""

_OPTIONAL_FIELDS = {"a_init": "kaiming"}  # fields newer than the first stored configs


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


def _type_name(t: type[nn.Module]) -> str:
    # Layer types are stored by their torch.nn name; nothing else is looked up when reading.
    if getattr(nn, t.__name__, None) is not t:
        raise UnsupportedModuleError(
            f"Layer type {t.__qualname__} cannot be stored in a LoRA config: only torch.nn "
            "layer types are stored, by name. Use target_types=(nn.Linear,) or (nn.Conv2d,)."
        )
    return str(t.__name__)


def _type_from_name(name: object) -> type[nn.Module]:
    t = getattr(nn, name, None) if isinstance(name, str) else None
    if not (isinstance(t, type) and issubclass(t, nn.Module)):
        raise UnsupportedModuleError(
            f"Stored LoRA config names the layer type {name!r}, which is not a torch.nn module "
            "type. Expected names such as 'Linear' or 'Conv2d'; the file is damaged or was "
            "written by an incompatible geofm version."
        )
    return t


def lora_scaling(rank: int, alpha: float, use_rslora: bool) -> float:
    """The factor ``s`` multiplying ``B A x``: ``alpha / rank``, or ``alpha / sqrt(rank)`` (rsLoRA).

    Args:
        rank: LoRA rank ``r``.
        alpha: Scaling numerator.
        use_rslora: Rank-stabilised scaling (Kalajdzievski, 2023).

    Returns:
        ``s``.

    Example:
        >>> lora_scaling(16, 8.0, False), lora_scaling(16, 8.0, True)
        (0.5, 2.0)
    """
    return alpha / (math.sqrt(rank) if use_rslora else rank)


def check_lora_hparams(rank: int, alpha: float, dropout: float, *, owner: str) -> None:
    """Check the hyperparameters shared by :class:`LoRAConfig` and the LoRA layers.

    Args:
        rank: LoRA rank ``r``; an integer >= 1.
        alpha: Scaling numerator; > 0.
        dropout: Dropout probability on the adapter input; in ``[0, 1)``.
        owner: The class checked, named in the errors (``"LoRAConfig"``).

    Raises:
        ValueError: If a value is out of range.

    Example:
        >>> check_lora_hparams(0, 16.0, 0.0, owner="LoRAConfig")
        Traceback (most recent call last):
        ...
        ValueError: LoRAConfig.rank must be an integer >= 1, got 0. Pass a rank such as 8.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(
            f"{owner}.rank must be an integer >= 1, got {rank!r}. Pass a rank such as 8."
        )
    if not alpha > 0:
        raise ValueError(f"{owner}.alpha must be > 0, got {alpha!r}. Pass e.g. alpha=2 * rank.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{owner}.dropout must be in [0, 1), got {dropout!r}. Pass e.g. 0.05.")


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
            matched module must be a supported layer. :func:`~geofm.lora.apply_lora`
            checks that each type is one LoRA can wrap.
        exclude: Module-name globs never adapted, even if matched.
        qkv_parts: Which thirds of fused qkv projections to adapt.
        qkv_names: Globs naming the fused qkv projections ``qkv_parts`` applies to.
        use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.
        also: Module-name globs trained and saved in full next to the adapters
            (PEFT's ``modules_to_save``), e.g. ``("head",)``.
        a_init: How ``A`` is drawn. ``"kaiming"`` (default; the LoRA reference
            code and PEFT): Kaiming-uniform with fan-in = the layer's input
            width. ``"kaiming_rank"``: fan-in = ``rank``, as EcoVision-LoRA's
            notebooks draw it (values ``sqrt(in / rank)`` times larger). See
            :func:`~geofm.lora.init_lora_pair`.

    Raises:
        ValueError: On an out-of-range number, an empty or string-valued
            pattern list, unknown / repeated ``qkv_parts``, or a ``target_types``
            entry that is not an ``nn.Module`` subclass.

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
    a_init: LoRAInitA = "kaiming"

    def __post_init__(self) -> None:
        check_lora_hparams(self.rank, self.alpha, self.dropout, owner="LoRAConfig")
        if self.a_init not in get_args(LoRAInitA):
            raise ValueError(
                f"LoRAConfig.a_init must be one of {get_args(LoRAInitA)}, got {self.a_init!r}."
            )
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
        if bad:
            raise ValueError(
                f"LoRAConfig.target_types must hold nn.Module subclasses, got {bad!r}. "
                "Pass layer classes such as (nn.Linear,)."
            )
        object.__setattr__(self, "target_types", types)

    @property
    def scaling(self) -> float:
        """The factor ``s`` multiplying ``B A x``: see :func:`lora_scaling`."""
        return lora_scaling(self.rank, self.alpha, self.use_rslora)

    @property
    def adapts_all_qkv_parts(self) -> bool:
        """Whether fused qkv layers are adapted as a whole (one adapter)."""
        return self.qkv_parts == _QKV_ORDER

    @property
    def qkv_chunks(self) -> tuple[bool, bool, bool] | None:
        """The ``chunks`` flags of :class:`~geofm.lora.LoRALinear` for fused qkv layers.

        ``None`` when fused layers are adapted as a whole, else one flag per
        third in q, k, v order (``(True, False, True)`` for ``("q", "v")``).
        """
        if self.adapts_all_qkv_parts:
            return None
        q, k, v = (p in self.qkv_parts for p in _QKV_ORDER)
        return q, k, v

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in saved adapter files).

        Returns:
            The config as JSON, layer types by their ``torch.nn`` name
            (``"Linear"``, ``"Conv2d"``).

        Raises:
            UnsupportedModuleError: If a ``target_types`` entry is not a
                ``torch.nn`` class (a user subclass cannot be stored by name).

        Example:
            >>> LoRAConfig(target_types=(nn.Linear,)).to_json()[:40]
            '{"a_init": "kaiming", "alpha": 16.0, "al'
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
            UnsupportedModuleError: If a layer type name is not a ``torch.nn`` module class.

        Example:
            >>> LoRAConfig.from_json(LoRAConfig(rank=2).to_json()).rank
            2
        """
        data = json.loads(text)
        expected = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or set(data) | set(_OPTIONAL_FIELDS) != expected:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"Stored LoRA config has fields {got}, expected {sorted(expected)}. "
                "It was written by an incompatible geofm version."
            )
        data = {**_OPTIONAL_FIELDS, **data}  # fields a file written before them lacks
        data["target_types"] = tuple(_type_from_name(n) for n in data["target_types"])
        for name in ("targets", "exclude", "qkv_parts", "qkv_names", "also"):
            data[name] = tuple(data[name])
        return cls(**data)


def ecovision_config(
    *, city: Literal["shanghai", "las_vegas"] = "shanghai", a_init: LoRAInitA = "kaiming"
) -> LoRAConfig:
    """LoRA placement of EcoVision-LoRA on a timm DINOv2 ViT.

    Adapts ``blocks.*.attn.qkv`` and ``blocks.*.attn.proj`` (not the patch
    embedding), dropout 0.05, and trains/saves the regression ``head``.
    Shanghai uses r 8 / alpha 16, Las Vegas r 32 / alpha 64. On
    ``vit_base_patch14_dinov2`` that is 442,368 (Shanghai) or 1,769,472
    (Las Vegas) LoRA parameters.

    Args:
        city: Which notebook's setting: ``"shanghai"`` (4a) or ``"las_vegas"`` (4b).
        a_init: ``"kaiming"`` (default, fan-in = input width as in PEFT) or
            ``"kaiming_rank"``, the notebooks' own draw of ``A`` (fan-in = rank).

    Returns:
        The config.

    Raises:
        ValueError: If ``city`` is unknown.

    Example:
        >>> ecovision_config(city="las_vegas").rank
        32
        >>> ecovision_config(a_init="kaiming_rank").a_init  # as the notebooks
        'kaiming_rank'
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
        a_init=a_init,
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
