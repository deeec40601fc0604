"""PyTorch losses over the labelsmooth kernels: a drop-in for ``nn.CrossEntropyLoss``.

``CrossEntropyLoss(label_smoothing=α)`` takes the arguments of ``torch.nn.CrossEntropyLoss`` and
gives its results. For CPU float32 logits it computes the loss and its gradient in one pass of
the Rust kernel (the tensors are read in place through NumPy); anywhere else (CUDA, float64,
probability targets that require a gradient) it runs PyTorch's own operations with the same
semantics. A backward that builds a graph (``create_graph=True``, gradient penalties) takes its
gradient from PyTorch's operations too, so that second derivatives are right. Beyond PyTorch it
has ``convention="exclude-true"`` (fairseq's smoothing) and ``confidence_penalty=β`` (Pereyra et
al. 2017).

``LinearCrossEntropyLoss`` fuses the output layer with the loss for large vocabularies: the
``[N, V]`` logits are never held.

>>> import torch
>>> from labelsmooth.torch import CrossEntropyLoss
>>> logits = torch.zeros(2, 4, requires_grad=True)
>>> loss = CrossEntropyLoss(label_smoothing=0.1)(logits, torch.tensor([1, 3]))
>>> loss.backward()
>>> round(loss.item(), 6), [round(g, 6) for g in logits.grad[0].tolist()]  # (p - q) / N
(1.386294, [0.1125, -0.3375, 0.1125, 0.1125])

``torch`` is an optional dependency: ``import labelsmooth`` works without it, this module needs it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _check_alpha, _check_convention, _native
from ._arrays import int64, number

__all__ = ["CrossEntropyLoss", "LinearCrossEntropyLoss", "cross_entropy", "linear_cross_entropy"]

def _check(label_smoothing: float, convention: str) -> float:
    alpha = _check_alpha(label_smoothing)
    _check_convention(convention)
    return alpha


def _reduction(size_average, reduce, reduction: str) -> str:
    if size_average is not None or reduce is not None:
        return torch.nn._reduction.legacy_get_string(size_average, reduce)
    return reduction


def _array(t: Tensor, dtype) -> np.ndarray:
    """The tensor's values as a C-contiguous NumPy array (shared, not copied, when it already
    is a contiguous CPU tensor of that dtype)."""
    return np.ascontiguousarray(t.detach().numpy(), dtype=dtype)


def _scaled(grad: Tensor, grad_out: Tensor, per_row: bool) -> Tensor:
    """``grad`` times the incoming gradient: unchanged (not copied) when that is 1, the usual
    ``loss.backward()``."""
    if per_row:
        return grad * grad_out.unsqueeze(1)
    if grad_out.numel() == 1 and float(grad_out) == 1.0:
        return grad
    return grad * grad_out


def _ce_kernel(logits, target, weight, alpha, convention, ignore_index, reduction, want):
    x = _array(logits, np.float32)
    w = None if weight is None else _array(weight, np.float32)
    if target.is_floating_point():
        return _native.cross_entropy_probs(x, _array(target, np.float32), alpha, w, reduction, want)
    return _native.cross_entropy_ids(
        x, _array(target, np.int64), alpha, convention, w, ignore_index, reduction, want
    )


class _FusedCrossEntropy(torch.autograd.Function):
    """Loss and gradient of ``[N, C]`` float32 logits in one kernel call. The gradient is handed
    to autograd without a copy; a second backward through the same graph
    (``retain_graph=True``) computes it again; a backward that builds a graph differentiates
    PyTorch's operations instead."""

    @staticmethod
    def forward(ctx, logits, target, weight, alpha, convention, ignore_index, reduction):
        want = ctx.needs_input_grad[0]
        loss, grad = _ce_kernel(logits, target, weight, alpha, convention, ignore_index, reduction, want)
        ctx.args = (weight, alpha, convention, ignore_index, reduction)
        if want:
            ctx.save_for_backward(logits, target)
            ctx.grad = torch.from_numpy(grad)
        return torch.as_tensor(np.asarray(loss, dtype=np.float32))

    @staticmethod
    def backward(ctx, grad_out):
        reduction = ctx.args[-1]
        if torch.is_grad_enabled():
            # create_graph: a gradient that is itself differentiable.
            logits, target = ctx.saved_tensors
            loss = _reference_cross_entropy(logits, target, *ctx.args)
            (grad,) = torch.autograd.grad(loss, logits, grad_out, create_graph=True)
            return grad, None, None, None, None, None, None
        grad, ctx.grad = ctx.grad, None
        if grad is None:
            logits, target = ctx.saved_tensors
            grad = torch.from_numpy(_ce_kernel(logits, target, *ctx.args, True)[1])
        return _scaled(grad, grad_out, reduction == "none"), None, None, None, None, None, None


def _reference_cross_entropy(x, target, weight, alpha, convention, ignore_index, reduction):
    """The loss written with PyTorch's operations (any device and dtype)."""
    if convention == "uniform" or target.is_floating_point():
        return F.cross_entropy(
            x, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
            label_smoothing=alpha,
        )
    c = x.shape[1]
    if c < 2:
        raise ValueError(f"exclude-true smoothing needs at least 2 classes, got {c}")
    keep = target != ignore_index
    t = torch.where(keep, target, torch.zeros_like(target))
    if ((t < 0) | (t >= c)).any():
        row = int(torch.nonzero((t < 0) | (t >= c))[0, 0])
        raise ValueError(f"row {row}: class id {int(target[row])} is out of range for {c} classes")
    q = torch.full_like(x, alpha / (c - 1))
    q.scatter_(1, t.unsqueeze(1), 1.0 - alpha)
    w = torch.ones(c, dtype=x.dtype, device=x.device) if weight is None else weight.to(x.dtype)
    rows = -(q * w * F.log_softmax(x, dim=1)).sum(dim=1) * keep
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / (w[t] * keep).sum()


def _penalty(x, target, beta, ignore_index, reduction):
    """−β·H(softmax(x)) per row; rows of ignored targets count zero; masked classes (−inf
    logits, probability 0) add nothing."""
    logp = F.log_softmax(x, dim=1)
    finite = torch.isfinite(logp)
    logp = torch.where(finite, logp, torch.zeros_like(logp))
    rows = beta * (logp.exp() * logp * finite).sum(dim=1)
    if not target.is_floating_point():
        keep = target != ignore_index
        rows = rows * keep
        kept = keep.sum()
    else:
        kept = x.shape[0]
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / kept


def _beta(confidence_penalty) -> float:
    beta = number(confidence_penalty, "confidence_penalty")
    if not 0.0 <= beta < float("inf"):
        raise ValueError(f"confidence_penalty {beta} is not finite and >= 0")
    return beta


def _nothing_kept(t: Tensor, weight: Optional[Tensor], ignore_index: int) -> bool:
    """Whether a mean over these class ids divides by zero (every row ignored or weighing 0):
    PyTorch's answer, NaN, is then PyTorch's to give."""
    keep = t != ignore_index
    if weight is None:
        return not bool(keep.any())
    ids = t[keep]
    if ids.numel() and (ids.min() < 0 or ids.max() >= weight.shape[0]):
        return False  # the kernel names the bad id
    return not bool(weight[ids].sum() != 0)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    convention: str = "uniform",
    confidence_penalty: float = 0.0,
) -> Tensor:
    """``torch.nn.functional.cross_entropy`` with the fused kernel on the CPU, plus
    ``convention`` (``"uniform"`` as PyTorch, or ``"exclude-true"``: 1 − α on the target and
    α/(C − 1) elsewhere) and ``confidence_penalty`` β (adds −β·H(softmax) per row, reduced as
    the loss; rows of ignored targets count zero).

    ``input`` is ``[N, C]``, ``[C]`` or ``[N, C, d1, ...]``; ``target`` class ids of the matching
    shape, or probabilities of the input's shape."""
    reduction = _reduction(size_average, reduce, reduction)
    alpha = _check(label_smoothing, convention)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction `{reduction}` is not one of none, sum, mean")
    beta = _beta(confidence_penalty)
    ignore_index = int64(ignore_index, "ignore_index")
    x, t = input, target
    probabilities = t.is_floating_point()
    if probabilities and convention != "uniform":
        raise ValueError("probability targets take the uniform convention only")
    if x.dim() == 0:
        raise ValueError("input must be [N, C], [C] or [N, C, d1, ...], got a scalar")
    if probabilities:
        want = tuple(x.shape)
    elif x.dim() == 1:
        want = ()
    else:
        want = tuple(x.shape[:1]) + tuple(x.shape[2:])
    if tuple(t.shape) != want:
        raise ValueError(
            f"target has shape {tuple(t.shape)}, expected {want} for input {tuple(x.shape)}"
        )
    unbatched = x.dim() == 1
    if unbatched:
        x, t = x.unsqueeze(0), t.unsqueeze(0)
    shape = None
    if x.dim() > 2:
        c = x.shape[1]
        shape = (x.shape[0],) + tuple(x.shape[2:])
        x = x.movedim(1, -1).reshape(-1, c)
        t = t.movedim(1, -1).reshape(-1, c) if probabilities else t.reshape(-1)
    fused = (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and t.device.type == "cpu"
        and not t.requires_grad
        and (weight is None or (weight.device.type == "cpu" and not weight.requires_grad))
        and x.shape[0] > 0
        and not (reduction == "mean" and not probabilities and _nothing_kept(t, weight, ignore_index))
    )
    if fused:
        loss = _FusedCrossEntropy.apply(x, t, weight, alpha, convention, int(ignore_index), reduction)
    else:
        loss = _reference_cross_entropy(x, t, weight, alpha, convention, ignore_index, reduction)
    if beta:
        loss = loss + _penalty(x, t, beta, ignore_index, reduction)
    if reduction == "none":
        if shape is not None:
            loss = loss.reshape(shape)
        elif unbatched:
            loss = loss.squeeze(0)
    return loss


class CrossEntropyLoss(nn.Module):
    """A drop-in for ``torch.nn.CrossEntropyLoss``: same arguments, same results, the fused
    kernel for CPU float32 logits; plus ``convention`` and ``confidence_penalty`` (see
    :func:`cross_entropy`).

    >>> import torch
    >>> from labelsmooth.torch import CrossEntropyLoss
    >>> x, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    >>> ours = CrossEntropyLoss(label_smoothing=0.1)(x, y)
    >>> theirs = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(x, y)
    >>> bool(torch.isclose(ours, theirs, rtol=1e-6))
    True
    """

    def __init__(
        self,
        weight: Optional[Tensor] = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        convention: str = "uniform",
        confidence_penalty: float = 0.0,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = _reduction(size_average, reduce, reduction)
        self.label_smoothing = _check(label_smoothing, convention)
        self.convention = convention
        self.confidence_penalty = _beta(confidence_penalty)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input, target, weight=self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
            convention=self.convention, confidence_penalty=self.confidence_penalty,
        )

    def extra_repr(self) -> str:
        return (
            f"label_smoothing={self.label_smoothing}, convention={self.convention!r}, "
            f"reduction={self.reduction!r}"
        )


def _linear_kernel(hidden, weight, bias, target, class_weight, alpha, convention, ignore_index, reduction, want):
    return _native.linear_cross_entropy(
        _array(hidden, np.float32),
        _array(weight, np.float32),
        None if bias is None else _array(bias, np.float32),
        _array(target, np.int64),
        alpha,
        convention,
        None if class_weight is None else _array(class_weight, np.float32),
        ignore_index,
        reduction,
        want,
    )


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, class_weight, alpha, convention, ignore_index, reduction):
        want = any(ctx.needs_input_grad[:3])
        loss, grads = _linear_kernel(
            hidden, weight, bias, target, class_weight, alpha, convention, ignore_index, reduction, want
        )
        ctx.args = (class_weight, alpha, convention, ignore_index, reduction)
        ctx.has_bias = bias is not None
        if want:
            ctx.save_for_backward(hidden, weight, bias, target)
            ctx.grads = grads
        return torch.as_tensor(np.asarray(loss, dtype=np.float32))

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():
            # create_graph: gradients that are themselves differentiable.
            hidden, weight, bias, target = ctx.saved_tensors
            class_weight, alpha, convention, ignore_index, reduction = ctx.args
            inputs = [v for v in (hidden, weight, bias) if v is not None]
            loss = _reference_cross_entropy(
                F.linear(hidden, weight, bias), target, class_weight, alpha, convention,
                ignore_index, reduction,
            )
            grads = iter(torch.autograd.grad(loss, inputs, grad_out, create_graph=True, allow_unused=True))
            dh, dw = next(grads), next(grads)
            db = next(grads) if bias is not None else None
            return dh, dw, db, None, None, None, None, None, None
        grads, ctx.grads = ctx.grads, None
        if grads is None:
            grads = _linear_kernel(*ctx.saved_tensors, *ctx.args, True)[1]
        dh, dw, db = (None if g is None else _scaled(torch.from_numpy(g), grad_out, False) for g in grads)
        return dh, dw, db, None, None, None, None, None, None


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    target: Tensor,
    *,
    class_weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    convention: str = "uniform",
) -> Tensor:
    """``cross_entropy(F.linear(hidden, weight, bias), target, ...)`` without the ``[N, V]``
    logits on the CPU (float32, reductions ``"mean"`` and ``"sum"``); PyTorch's operations
    elsewhere. ``weight`` is ``[V, H]`` as ``nn.Linear(H, V)`` stores it."""
    alpha = _check(label_smoothing, convention)
    tensors = [hidden, weight] + ([] if bias is None else [bias])
    fused = (
        reduction in ("mean", "sum")
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and target.device.type == "cpu"
        and not target.is_floating_point()
        and (class_weight is None or not class_weight.requires_grad)
        and hidden.dim() == 2
        and hidden.shape[0] > 0
    )
    if fused:
        return _FusedLinearCrossEntropy.apply(
            hidden, weight, bias, target, class_weight, alpha, convention, int(ignore_index), reduction
        )
    logits = F.linear(hidden, weight, bias)
    return _reference_cross_entropy(logits, target, class_weight, alpha, convention, ignore_index, reduction)


class LinearCrossEntropyLoss(nn.Module):
    """The output layer's loss without its logits: ``forward(hidden, weight, bias, target)``
    equals ``CrossEntropyLoss(...)(F.linear(hidden, weight, bias), target)``; the ``[N, V]``
    logits and their gradient are never held on the CPU path (see
    :func:`linear_cross_entropy`). Pass the output layer's parameters,
    ``loss(h, head.weight, head.bias, y)``, instead of calling the layer."""

    def __init__(
        self,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        convention: str = "uniform",
    ) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = _check(label_smoothing, convention)
        self.convention = convention

    def forward(self, hidden: Tensor, weight: Tensor, bias: Optional[Tensor], target: Tensor) -> Tensor:
        return linear_cross_entropy(
            hidden, weight, bias, target, class_weight=self.weight,
            ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing, convention=self.convention,
        )
