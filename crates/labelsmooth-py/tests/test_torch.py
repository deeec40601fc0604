"""labelsmooth.torch against PyTorch itself: the drop-in loss equals nn.CrossEntropyLoss in value
and gradient, a training loop with it equals one with PyTorch's, the fallback passes gradcheck."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelsmooth.torch import (
    CrossEntropyLoss,
    LinearCrossEntropyLoss,
    cross_entropy,
    linear_cross_entropy,
)


def close(ours, theirs, rtol=1e-5):
    """Equal to float32 tolerance, relative to the largest |value| of the reference."""
    ours, theirs = ours.detach().double(), theirs.detach().double()
    assert ours.shape == theirs.shape
    scale = max(theirs.abs().max().item(), 1e-30)
    err = (ours - theirs).abs().max().item() / scale
    assert err <= rtol, f"differs by {err:.3g} of the largest value"


def both(x, t, **kw):
    """Loss and input gradient of ours and of PyTorch's, on copies of the same logits."""
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    ours = CrossEntropyLoss(**kw)(a, t)
    theirs = torch.nn.CrossEntropyLoss(**kw)(b, t)
    g = torch.randn_like(theirs) if theirs.dim() else torch.tensor(1.7)
    ours.backward(g)
    theirs.backward(g)
    return ours, theirs, a, b


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.35, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_class_ids_equal_pytorch(alpha, reduction, weighted):
    g = torch.Generator().manual_seed(int(alpha * 100) + len(reduction) + weighted)
    n, c = 37, 11
    x = torch.randn(n, c, generator=g) * 4
    t = torch.randint(0, c, (n,), generator=g)
    t[::5] = -100
    w = torch.rand(c, generator=g) + 0.1 if weighted else None
    ours, theirs, a, b = both(x, t, weight=w, reduction=reduction, label_smoothing=alpha)
    assert ours.grad_fn.name().startswith("_FusedCrossEntropy")
    close(ours, theirs)
    close(a.grad, b.grad)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_equal_pytorch(reduction):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(20, 6, generator=g)
    q = torch.softmax(torch.randn(20, 6, generator=g) * 2, dim=1)
    w = torch.rand(6, generator=g) + 0.5
    ours, theirs, a, b = both(x, q, weight=w, reduction=reduction, label_smoothing=0.2)
    close(ours, theirs)
    close(a.grad, b.grad)


def test_spatial_and_unbatched_inputs_equal_pytorch():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 5, 4, 2, generator=g)
    t = torch.randint(0, 5, (3, 4, 2), generator=g)
    for reduction in ["mean", "none"]:
        ours, theirs, a, b = both(x, t, reduction=reduction, label_smoothing=0.1)
        close(ours, theirs)
        close(a.grad, b.grad)
    ours, theirs, a, b = both(x[0, :, 0, 0], t[0, 0, 0], reduction="none", label_smoothing=0.1)
    close(ours, theirs)
    close(a.grad, b.grad)


def test_exclude_true_is_the_converted_uniform_factor():
    # exclude-true α with C classes gives the targets of uniform α·C/(C−1).
    g = torch.Generator().manual_seed(9)
    x = torch.randn(16, 8, generator=g)
    t = torch.randint(0, 8, (16,), generator=g)
    ours = cross_entropy(x, t, label_smoothing=0.14, convention="exclude-true")
    theirs = F.cross_entropy(x, t, label_smoothing=0.14 * 8 / 7)
    close(ours, theirs)


def test_fallback_passes_gradcheck_in_float64():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.tensor([0, 4, -100, 2, 2, 1])
    w = torch.rand(5, dtype=torch.float64, generator=g) + 0.5
    for conv in ["uniform", "exclude-true"]:
        for reduction in ["mean", "none"]:
            f = lambda z: cross_entropy(
                z, t, weight=w, label_smoothing=0.2, convention=conv, reduction=reduction,
                confidence_penalty=0.3,
            )
            assert torch.autograd.gradcheck(f, (x,))


def test_fused_float32_equals_the_float64_fallback():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(64, 9, generator=g) * 3
    t = torch.randint(0, 9, (64,), generator=g)
    t[::7] = -100
    w = torch.rand(9, generator=g) + 0.2
    for conv in ["uniform", "exclude-true"]:
        for reduction in ["mean", "sum", "none"]:
            a = x.clone().requires_grad_(True)
            b = x.double().requires_grad_(True)
            kw = dict(weight=w, label_smoothing=0.3, convention=conv, reduction=reduction)
            ours = cross_entropy(a, t, **kw)
            ref = cross_entropy(b, t, **{**kw, "weight": w.double()})
            assert ours.grad_fn.name().startswith("_FusedCrossEntropy")
            assert not ref.grad_fn.name().startswith("_FusedCrossEntropy")
            ours.sum().backward()
            ref.sum().backward()
            close(ours, ref)
            close(a.grad, b.grad)


def test_confidence_penalty_adds_minus_beta_entropy():
    g = torch.Generator().manual_seed(17)
    x = torch.randn(10, 4, generator=g)
    t = torch.randint(0, 4, (10,), generator=g)
    base = cross_entropy(x, t, label_smoothing=0.1)
    pen = cross_entropy(x, t, label_smoothing=0.1, confidence_penalty=0.5)
    p = torch.softmax(x, dim=1)
    entropy = -(p * p.log()).sum(dim=1).mean()
    close(pen - base, -0.5 * entropy)


def test_training_with_the_drop_in_equals_training_with_pytorch():
    torch.manual_seed(0)
    x = torch.randn(256, 20)
    y = torch.randint(0, 7, (256,))
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 7))
    twin = copy.deepcopy(model)
    losses = []
    for net, loss_fn in [
        (model, CrossEntropyLoss(label_smoothing=0.1)),
        (twin, torch.nn.CrossEntropyLoss(label_smoothing=0.1)),
    ]:
        opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
        trace = []
        for step in range(20):
            batch = slice((step * 64) % 256, (step * 64) % 256 + 64)
            opt.zero_grad()
            loss = loss_fn(net(x[batch]), y[batch])
            loss.backward()
            opt.step()
            trace.append(loss.item())
        losses.append(trace)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    assert losses[0][-1] < losses[0][0]
    for p, q in zip(model.parameters(), twin.parameters()):
        close(p, q, rtol=1e-4)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_cross_entropy_equals_linear_then_loss(reduction, with_bias):
    g = torch.Generator().manual_seed(19)
    n, h, v = 50, 16, 300
    hidden = torch.randn(n, h, generator=g)
    weight = torch.randn(v, h, generator=g) * 0.3
    bias = torch.randn(v, generator=g) * 0.1 if with_bias else None
    t = torch.randint(0, v, (n,), generator=g)
    t[::9] = -100
    cw = torch.rand(v, generator=g) + 0.5
    leaves = lambda: [z.clone().requires_grad_(True) if z is not None else None for z in (hidden, weight, bias)]
    a, b = leaves(), leaves()
    ours = LinearCrossEntropyLoss(weight=cw, reduction=reduction, label_smoothing=0.1)(*a, t)
    theirs = torch.nn.CrossEntropyLoss(weight=cw, reduction=reduction, label_smoothing=0.1)(
        F.linear(b[0], b[1], b[2]), t
    )
    assert ours.grad_fn.name().startswith("_FusedLinearCrossEntropy")
    (ours * 1.3).backward()
    (theirs * 1.3).backward()
    close(ours, theirs)
    for p, q in zip(a, b):
        if p is not None:
            close(p.grad, q.grad)


def test_linear_cross_entropy_falls_back_for_per_row_losses():
    g = torch.Generator().manual_seed(23)
    hidden, weight = torch.randn(5, 4, generator=g), torch.randn(7, 4, generator=g)
    t = torch.randint(0, 7, (5,), generator=g)
    ours = linear_cross_entropy(hidden, weight, None, t, reduction="none", label_smoothing=0.2)
    close(ours, F.cross_entropy(F.linear(hidden, weight), t, reduction="none", label_smoothing=0.2))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: CrossEntropyLoss()(torch.zeros(3, 4), torch.tensor([0, 1, 4])), "row 2: class id 4"),
        (lambda: CrossEntropyLoss(label_smoothing=1.2), "outside [0, 1]"),
        (lambda: CrossEntropyLoss(convention="fair"), "convention `fair`"),
        (lambda: CrossEntropyLoss()(torch.full((2, 3), float("nan")), torch.tensor([0, 1])), "logit is NaN"),
        (lambda: CrossEntropyLoss(convention="exclude-true")(torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0, 3])), "row 1: class id 3"),
        (lambda: cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="avg"), "reduction `avg`"),
        (lambda: cross_entropy(torch.randn(2, 3, 4), torch.randint(0, 3, (4, 2))), "target has shape (4, 2), expected (2, 4)"),
        (lambda: cross_entropy(torch.randn(2, 3), torch.zeros(2, 1, dtype=torch.long)), "target has shape (2, 1), expected (2,)"),
        (lambda: cross_entropy(torch.randn(2, 3), torch.full((2, 3), 1 / 3), convention="exclude-true"), "probability targets take the uniform convention only"),
        (lambda: CrossEntropyLoss(confidence_penalty=-1.0), "confidence_penalty -1.0 is not finite and >= 0"),
        (lambda: CrossEntropyLoss(confidence_penalty=float("nan")), "confidence_penalty nan"),
    ],
)
def test_bad_input_raises_value_error(call, words):
    with pytest.raises(ValueError) as e:
        call()
    assert words in str(e.value)


def test_a_smoothing_factor_that_is_not_a_number_is_a_type_error():
    with pytest.raises(TypeError, match="label_smoothing must be a number"):
        CrossEntropyLoss(label_smoothing="a")


def test_a_second_backward_through_the_same_graph():
    g = torch.Generator().manual_seed(29)
    x = torch.randn(8, 5, generator=g, requires_grad=True)
    t = torch.randint(0, 5, (8,), generator=g)
    loss = CrossEntropyLoss(label_smoothing=0.1)(x, t)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    close(x.grad, 2 * first)
    hidden = torch.randn(6, 3, generator=g, requires_grad=True)
    weight = torch.randn(4, 3, generator=g, requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, None, torch.tensor([0, 1, 2, 3, 0, 1]))
    loss.backward(retain_graph=True)
    first = weight.grad.clone()
    loss.backward()
    close(weight.grad, 2 * first)


def test_double_backward_equals_pytorch():
    # A gradient penalty: the second derivative must be PyTorch's, not dropped.
    g = torch.Generator().manual_seed(31)
    x = torch.randn(6, 4, generator=g)
    t = torch.randint(0, 4, (6,), generator=g)
    results = []
    for loss_fn in [lambda z: cross_entropy(z, t, label_smoothing=0.1),
                    lambda z: F.cross_entropy(z, t, label_smoothing=0.1)]:
        z = x.clone().requires_grad_(True)
        loss = loss_fn(z)
        (gz,) = torch.autograd.grad(loss, z, create_graph=True)
        (loss + 10 * gz.pow(2).sum()).backward()
        results.append(z.grad)
    close(results[0], results[1])
    hidden = torch.randn(5, 3, generator=g)
    weight = torch.randn(6, 3, generator=g)
    y = torch.randint(0, 6, (5,), generator=g)
    results = []
    for fused in [True, False]:
        h = hidden.clone().requires_grad_(True)
        w = weight.clone().requires_grad_(True)
        loss = (linear_cross_entropy(h, w, None, y) if fused
                else F.cross_entropy(F.linear(h, w), y))
        (gh,) = torch.autograd.grad(loss, h, create_graph=True)
        (loss + gh.pow(2).sum()).backward()
        results.append((h.grad, w.grad))
    close(results[0][0], results[1][0])
    close(results[0][1], results[1][1])


def test_a_mean_over_nothing_is_nan_as_in_pytorch():
    x = torch.randn(4, 3, requires_grad=True)
    t = torch.full((4,), -100)
    ours = CrossEntropyLoss(label_smoothing=0.1)(x, t)
    theirs = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(x, t)
    assert torch.isnan(ours) and torch.isnan(theirs)
    w = torch.tensor([0.0, 1.0, 1.0])
    ours = CrossEntropyLoss(weight=w)(x, torch.tensor([0, 0, 0, 0]))
    assert torch.isnan(ours) and torch.isnan(F.cross_entropy(x, torch.tensor([0, 0, 0, 0]), weight=w))


def test_confidence_penalty_with_masked_classes():
    x = torch.tensor([[0.0, float("-inf"), 0.0], [1.0, 2.0, float("-inf")]], requires_grad=True)
    t = torch.tensor([0, 1])
    loss = cross_entropy(x, t, confidence_penalty=0.5) - cross_entropy(x, t)
    # Two classes left in each row: −β·H = −0.5·ln 2 for the first row.
    p = torch.softmax(torch.tensor([1.0, 2.0]), dim=0)
    want = 0.5 * (-(np.log(2.0)) + (p * p.log()).sum().item()) / 2
    assert abs(loss.item() - want) < 1e-6
    cross_entropy(x, t, confidence_penalty=0.5).backward()
    assert torch.isfinite(x.grad[torch.isfinite(x)]).all()
