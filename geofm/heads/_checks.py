"""Input checks shared by the task models (private module, public helpers)."""

from __future__ import annotations

from typing import Any

from torch import nn

from geofm.input_spec import InputSpec

__all__ = ["BackboneSpecMixin", "backbone_input_spec", "check_backbone"]


def check_backbone(backbone: object, protocol: type, *, owner: str, needs: str) -> None:
    """Raise unless ``backbone`` is an ``nn.Module`` that satisfies ``protocol``.

    Args:
        backbone: The object passed as a task model's backbone.
        protocol: A ``runtime_checkable`` protocol the backbone must satisfy.
        owner: Name of the task model, for the message.
        needs: What the protocol asks for, for the message (e.g. ``"feature_info"``).

    Raises:
        TypeError: If ``backbone`` is not such a module.

    Example:
        >>> from typing import Protocol, runtime_checkable
        >>> @runtime_checkable
        ... class HasEmbed(Protocol):
        ...     def embed(self, x): ...
        >>> check_backbone(nn.Identity(), HasEmbed, owner="PooledModel", needs="embed()")
        Traceback (most recent call last):
        ...
        TypeError: PooledModel needs an nn.Module backbone with embed(), got Identity. ...
    """
    if not isinstance(backbone, nn.Module) or not isinstance(backbone, protocol):
        raise TypeError(
            f"{owner} needs an nn.Module backbone with {needs}, got {type(backbone).__name__}. "
            f"Use geofm.create_backbone(...) or add {needs} to your module."
        )


def backbone_input_spec(backbone: nn.Module, owner: str) -> InputSpec:
    """The ``input_spec`` of a task model's backbone.

    Args:
        backbone: The task model's backbone.
        owner: Name of the task model, for the message.

    Returns:
        The backbone's :class:`~geofm.InputSpec`.

    Raises:
        AttributeError: If the backbone has none (not built by ``create_backbone``
            and no ``input_spec`` set).

    Example:
        >>> backbone_input_spec(nn.Identity(), "PooledModel")
        Traceback (most recent call last):
        ...
        AttributeError: PooledModel's backbone Identity has no input_spec. ...
    """
    spec = getattr(backbone, "input_spec", None)
    if not isinstance(spec, InputSpec):
        raise AttributeError(
            f"{owner}'s backbone {type(backbone).__name__} has no input_spec. Build it with "
            "geofm.create_backbone(...), or set backbone.input_spec = geofm.InputSpec(...)."
        )
    return spec


class BackboneSpecMixin:
    """``input_spec`` of a task model: its backbone's (setting it sets the backbone's).

    Example:
        >>> import geofm
        >>> from geofm.heads import ClassificationHead, PooledModel
        >>> model = PooledModel(geofm.create_backbone("resnet18"), ClassificationHead(512, 2))
        >>> model.input_spec.multiple
        32
    """

    backbone: Any

    @property
    def input_spec(self) -> InputSpec:
        """The backbone's ``input_spec``.

        Raises:
            AttributeError: If the backbone has no ``input_spec``.
        """
        return backbone_input_spec(self.backbone, type(self).__name__)

    @input_spec.setter
    def input_spec(self, spec: InputSpec) -> None:
        self.backbone.input_spec = spec
