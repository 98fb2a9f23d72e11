"""MAE: pixel reconstruction loss on the masked patches.

References:
    - He, Chen, Xie, Li, Dollar, Girshick. "Masked Autoencoders Are Scalable
      Vision Learners." CVPR 2022. https://arxiv.org/abs/2111.06377
    - Reference code: https://github.com/facebookresearch/mae
      (``models_mae.py``, ``forward_loss``).
    - SpectralEarth: https://github.com/AABNassim/spectral_earth
      (``src/models/mae_module.py``, ``norm_pix=True``).
"""

from __future__ import annotations

from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.losses._common import check_positive, full_precision, undefined_loss_message, upcast

__all__ = ["MAELoss", "normalize_patches"]


def normalize_patches(patches: Tensor, *, eps: float = 1e-6) -> Tensor:
    """Standardise each patch vector: ``(x - mean) / sqrt(var + eps)``.

    Mean and (unbiased, as in the MAE code) variance run over the last
    dimension, i.e. over the pixels and bands of one patch.

    Args:
        patches: Patch vectors, e.g. from :func:`geofm.ssl.patchify`.
        eps: Added to the variance.

    Returns:
        The standardised patches.

    Raises:
        ShapeError: If a patch holds fewer than 2 values (its unbiased variance
            is undefined).

    Shape:
        - Input: ``(N, L, P)`` with ``P >= 2``.
        - Output: same as input.

    Example:
        >>> import torch
        >>> normalize_patches(torch.tensor([[[1.0, 3.0]]]), eps=0.0)
        tensor([[[-0.7071,  0.7071]]])
    """
    if patches.ndim == 0 or patches.shape[-1] < 2:
        raise ShapeError(
            f"normalize_patches needs at least 2 values per patch for the unbiased variance, "
            f"got patches of shape {tuple(patches.shape)}. Pass (N, L, P) patch vectors with "
            "P >= 2 (patch_size**2 * bands)."
        )
    mean = patches.mean(dim=-1, keepdim=True)  # (N, L, 1)
    var = patches.var(dim=-1, keepdim=True)  # (N, L, 1)
    return (patches - mean) / (var + eps).sqrt()


class MAELoss(nn.Module):
    """Mean squared error on the masked patches only (MAE).

    Per patch, the squared error is averaged over its ``P`` values; the loss
    is the mean of those over the patches with ``mask == True``. With
    ``normalize_targets=True`` each target patch is first standardised by its
    own mean and variance (``norm_pix_loss`` in the MAE code; SpectralEarth
    uses it). The mean over no patch is undefined: a mask with no masked patch
    raises (checking it reads one number from the mask's device). fp16/bf16
    inputs are computed in float32.

    Args:
        normalize_targets: Standardise each target patch (see :func:`normalize_patches`).
        eps: Added to the per-patch variance, ``> 0`` (1e-6).

    Shape:
        - prediction: ``(N, L, P)``, one prediction per patch.
        - target: ``(N, L, P)``, e.g. ``patchify(images, patch_size=p)``.
        - mask: ``(N, L)``, ``True`` (or 1) where the patch was masked.
        - Output: ``()``.

    Raises:
        ValueError: If ``eps`` is not finite and positive; in ``forward``, if
            no patch is masked.
        ShapeError: If the shapes do not match.

    Example:
        >>> import torch
        >>> loss_fn = MAELoss(normalize_targets=True)
        >>> prediction, target = torch.zeros(2, 4, 8), torch.randn(2, 4, 8)
        >>> mask = torch.tensor([[True, False, True, False]] * 2)
        >>> loss_fn(prediction, target, mask).shape
        torch.Size([])
    """

    def __init__(self, *, normalize_targets: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        check_positive(eps, owner="MAELoss", name="eps", hint="the MAE code uses 1e-6")
        self.normalize_targets = normalize_targets
        self.eps = eps

    def extra_repr(self) -> str:
        """Return the hyperparameters shown in ``repr``."""
        return f"normalize_targets={self.normalize_targets}, eps={self.eps}"

    def forward(self, prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Return the masked reconstruction loss.

        Args:
            prediction: Decoder predictions for every patch.
            target: Target patch vectors (not normalised).
            mask: Which patches were masked and count in the loss.

        Returns:
            Scalar loss.

        Raises:
            ShapeError: If the shapes do not match.
            ValueError: If no patch is masked (the loss is undefined).
        """
        if prediction.ndim != 3 or prediction.shape != target.shape:
            raise ShapeError(
                f"MAELoss expects prediction and target of the same shape (N, L, P), got "
                f"{tuple(prediction.shape)} and {tuple(target.shape)}. Patchify the images with "
                "the decoder's patch size."
            )
        if mask.shape != prediction.shape[:2]:
            raise ShapeError(
                f"MAELoss expects a mask of shape (N, L) = {tuple(prediction.shape[:2])}, got "
                f"{tuple(mask.shape)}. Pass the patch mask returned by random_masking."
            )
        with full_precision(prediction):
            prediction, target = upcast(prediction), upcast(target)
            if self.normalize_targets:
                target = normalize_patches(target, eps=self.eps)
            per_patch = (prediction - target).pow(2).mean(dim=-1)  # (N, L)
            weights = mask.to(per_patch.dtype)  # (N, L)
            count = weights.sum()
            if not bool(count > 0):
                raise ValueError(
                    undefined_loss_message(
                        "MAELoss",
                        needs="at least 1 masked patch to average over",
                        got=f"a mask of shape {tuple(mask.shape)} with none set",
                        fix="Pass the mask of random_masking with mask_ratio > 0.",
                    )
                )
            return (per_patch * weights).sum() / count
