"""Classification head for multi-class and multi-label tasks, with linear-evaluation init.

References:
    Bardes et al., "VICReg", ICLR 2022; https://github.com/facebookresearch/vicreg
    (``evaluate.py``: Linear(embedding -> classes), weight ~ N(0, 0.01), bias 0).
    Braham et al., "SpectralEarth", arXiv:2408.08447 (multi-label linear probe on CORINE).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from geofm._registry import register_module
from geofm.errors import ShapeError

__all__ = ["ClassificationHead"]


@register_module()
class ClassificationHead(nn.Module):
    """Linear classifier on pooled embeddings or on feature maps.

    Outputs logits in both modes: train multi-class heads with cross-entropy
    and multi-label heads with BCE-with-logits. :meth:`predict` turns logits
    into class indices (argmax) or multi-hot labels (sigmoid > ``threshold``).
    By default the weights are drawn from N(0, ``init_std`` = 0.01) and the
    bias is zero, as in VICReg's linear evaluation.

    Args:
        in_features: Embedding or channel width ``D``.
        num_classes: Number of classes (labels, for multi-label).
        multi_label: Whether classes are independent (sigmoid) rather than
            mutually exclusive (softmax); only changes :meth:`predict`.
        pool: ``None`` for ``(N, D)`` inputs; ``"avg"`` or ``"max"`` to
            global-pool ``(N, D, H, W)`` maps first (SatlasPretrain uses max).
        dropout: Dropout probability before the linear layer.
        init_std: Standard deviation of the normal weight init (bias zero);
            ``None`` keeps PyTorch's default ``nn.Linear`` init.
        threshold: Probability above which :meth:`predict` marks a label
            present (multi-label only).

    Shape:
        - Input: ``(N, D)`` if ``pool is None`` else ``(N, D, H, W)``.
        - Output: ``(N, num_classes)`` logits.

    Raises:
        ShapeError: In ``forward``, if the input shape does not match ``pool``
            and ``in_features``.

    Example:
        >>> import torch
        >>> head = ClassificationHead(in_features=8, num_classes=3)
        >>> head(torch.randn(2, 8)).shape
        torch.Size([2, 3])
        >>> float(head.linear.bias.detach().abs().sum())
        0.0
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        multi_label: bool = False,
        pool: Literal["avg", "max"] | None = None,
        dropout: float = 0.0,
        init_std: float | None = 0.01,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if pool not in (None, "avg", "max"):
            raise ValueError(f"pool must be None, 'avg' or 'max', got {pool!r}.")
        self.in_features = in_features
        self.multi_label = multi_label
        self.pool = pool
        self.threshold = threshold
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_classes)
        if init_std is not None:
            nn.init.normal_(self.linear.weight, mean=0.0, std=init_std)
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for ``x``; see the class docstring for shapes."""
        expected = "(N, D)" if self.pool is None else "(N, D, H, W)"
        if x.ndim != (2 if self.pool is None else 4) or x.shape[1] != self.in_features:
            raise ShapeError(
                f"ClassificationHead(pool={self.pool!r}) expects {expected} input with "
                f"D={self.in_features}, got {tuple(x.shape)}."
            )
        if self.pool == "avg":
            x = x.mean(dim=(2, 3))  # (N, D)
        elif self.pool == "max":
            x = x.amax(dim=(2, 3))  # (N, D)
        out: Tensor = self.linear(self.dropout(x))
        return out

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Predicted labels for a batch.

        Args:
            x: Input, as for ``forward``.

        Returns:
            Class indices ``(N,)`` (int64) for multi-class heads, or multi-hot
            ``(N, num_classes)`` (bool) for multi-label heads.

        Example:
            >>> import torch
            >>> head = ClassificationHead(in_features=4, num_classes=3, multi_label=True)
            >>> head.predict(torch.randn(2, 4)).shape
            torch.Size([2, 3])
        """
        logits: Tensor = self(x)
        if self.multi_label:
            return torch.sigmoid(logits) > self.threshold
        return logits.argmax(dim=1)
