"""Unit tests of the synthesis building blocks: loss terms, hooks, augmentation, targets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stimuli.augment import random_amplitude_scale, random_time_shift
from stimuli.synthesis import losses as L
from stimuli.synthesis.hooks import BatchNormStatHook, FeatureHook
from stimuli.synthesis.moments import channel_moments
from stimuli.synthesis.targets import balanced_labels, make_targets


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- class / hidden excitation ------------------------------------------------------------
def test_class_excitation_matches_cross_entropy() -> None:
    logits = torch.randn(6, 3, generator=gen())
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    hard = F.one_hot(labels, 3).float()
    assert torch.allclose(L.class_excitation(logits, hard), F.cross_entropy(logits, labels))
    soft = torch.softmax(torch.randn(6, 3, generator=gen(1)), dim=1)
    assert torch.allclose(L.class_excitation(logits, soft), F.cross_entropy(logits, soft))
    # Minimum for soft targets is their entropy, reached when softmax(logits) == targets.
    entropy = -(soft * soft.log()).sum(1).mean()
    assert torch.allclose(L.class_excitation(soft.log(), soft), entropy, atol=1e-6)


def test_class_unit_weights_and_hidden_excitation() -> None:
    w = torch.tensor([[2.0, 0.0, -1.0, 0.5], [-2.0, 1.0, 1.0, 0.5]])
    uw = L.class_unit_weights(w, top_frac=0.5)
    # class 0 contrast = [4, -1, -2, 0] -> only unit 0 positive; class 1 = [-4, 1, 2, 0].
    assert torch.allclose(uw, torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 0.5, 0]]))
    feats = torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.0, 3.0, 3.0, 0.0]])
    labels = torch.tensor([0, 1])
    aligned = L.hidden_excitation(feats, labels, uw)
    swapped = L.hidden_excitation(feats, labels.flip(0), uw)
    assert aligned < swapped
    assert torch.allclose(aligned, torch.tensor(-3.0))
    # Probability targets generalise int labels.
    assert torch.allclose(L.hidden_excitation(feats, F.one_hot(labels, 2).float(), uw), aligned)


# --- BatchNorm hook ------------------------------------------------------------------------
def _bn_net() -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm1d(3), nn.Conv1d(3, 2, 1), nn.BatchNorm1d(2)).eval()


def test_bn_hook_zero_when_batch_matches_running_stats() -> None:
    net = _bn_net()
    x = torch.randn(8, 3, 20, generator=gen()) * 2 + 1
    inp = x
    for bn, after in ((net[0], net[1]), (net[2], nn.Identity())):
        bn.running_mean.copy_(inp.mean(dim=(0, 2)).detach())
        bn.running_var.copy_(inp.var(dim=(0, 2), unbiased=False).detach())
        inp = after(bn(inp))
    with BatchNormStatHook(net) as hook:
        assert len(hook.layers) == 2
        net(x)
        assert L.bn_matching(hook).item() < 1e-4
        net(x + 1.0)
        assert L.bn_matching(hook).item() > 0.5
        assert torch.allclose(hook.loss, sum(hook.layer_losses.values()))
    # Removed on exit: a further forward records nothing.
    hook.reset()
    net(x)
    assert hook.layer_losses == {}
    assert float(hook.loss) == 0.0


def test_bn_hook_is_differentiable_and_leaves_buffers() -> None:
    net = _bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 3, 10, generator=gen(), requires_grad=True)
    hook = BatchNormStatHook(net)
    net(x)
    hook.loss.backward()
    hook.remove()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("shape", [(7, 3, 50), (5, 4), (2, 3, 4, 6)])
def test_channel_moments_are_var_mean_with_its_gradients(shape) -> None:
    """The BN term's moments: torch.var_mean's values and gradients (float32 rounding), exact
    derivatives (gradcheck, float64), and either output alone backpropagates."""
    x = (torch.randn(*shape, generator=gen()) * 3 + 2).requires_grad_(True)
    dims = [d for d in range(x.dim()) if d != 1]
    mean, var = channel_moments(x)
    want_var, want_mean = torch.var_mean(x, dim=dims, unbiased=False)
    assert torch.allclose(mean, want_mean, atol=1e-5) and torch.allclose(var, want_var, rtol=1e-5)
    w_mean, w_var = torch.randn(2, shape[1], generator=gen(1))
    (grad,) = torch.autograd.grad((w_mean * mean).sum() + (w_var * var).sum(), x)
    (want,) = torch.autograd.grad((w_mean * want_mean).sum() + (w_var * want_var).sum(), x)
    assert torch.allclose(grad, want, rtol=1e-4, atol=1e-6)
    x64 = x.detach().double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: channel_moments(t), (x64,))
    var_only = torch.autograd.grad(channel_moments(x)[1].sum(), x)[0]  # no mean gradient
    want_var_only = torch.autograd.grad(torch.var(x, dim=dims, unbiased=False).sum(), x)[0]
    assert torch.allclose(var_only, want_var_only, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"needs \(B, C, \.\.\.\) activations"):
        channel_moments(torch.zeros(5))


def test_feature_hook_captures_input_and_output() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 3, generator=gen())
    with FeatureHook(net, "1", capture="input") as fin, FeatureHook(net, "1") as fout:
        net(x)
    assert torch.equal(fin.value, net[0](x))
    assert torch.equal(fout.value, torch.relu(net[0](x)))
    with pytest.raises(ValueError):
        FeatureHook(net, "1", capture="both")  # type: ignore[arg-type]


# --- priors --------------------------------------------------------------------------------
def test_total_variation_and_l2() -> None:
    assert L.total_variation(torch.full((2, 1, 50), 3.0)).item() == 0.0
    ramp = torch.arange(10.0).view(1, 1, 10)
    assert L.total_variation(ramp).item() == pytest.approx(1.0)
    assert L.total_variation(torch.ones(2, 1, 1)).item() == 0.0
    assert L.l2_prior(torch.full((2, 1, 4), 2.0)).item() == pytest.approx(4.0)


# --- identity inhibition -------------------------------------------------------------------
def test_identity_uniform() -> None:
    assert L.identity_uniform(torch.full((4, 7), 2.5)).abs().item() < 1e-6
    peaked = torch.zeros(4, 7)
    peaked[:, 0] = 5.0
    value = L.identity_uniform(peaked)
    assert value.item() > 0.1
    expected = (-math.log(7) - F.log_softmax(peaked, 1).mean(1)).mean()
    assert torch.allclose(value, expected)


def test_identity_centroid() -> None:
    centroids = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    on_person = centroids[:1].clone()
    middle = torch.tensor([[2.0, 2.0]])  # equidistant from all three
    assert L.identity_centroid(middle, centroids).abs().item() < 1e-6
    assert L.identity_centroid(on_person, centroids).item() > 0.3
    # Hinge: 0 when at least `margin` (in units of mean centroid distance) away, > 0 when close.
    assert L.identity_centroid(middle, centroids, margin=0.2).item() == 0.0
    assert L.identity_centroid(on_person, centroids, margin=0.2).item() == pytest.approx(0.2)
    x = on_person.clone().requires_grad_(True)
    L.identity_centroid(x, centroids).backward()
    assert torch.isfinite(x.grad).all()
    # Scale invariance.
    assert torch.allclose(
        L.identity_centroid(on_person * 10, centroids * 10),
        L.identity_centroid(on_person, centroids),
    )


def test_diversity() -> None:
    same = torch.ones(5, 8)
    assert L.diversity(same).item() == pytest.approx(1.0)
    varied = torch.randn(5, 8, generator=gen())
    assert L.diversity(varied) < L.diversity(same)
    assert L.diversity(torch.randn(1, 8)).item() == 0.0


def test_competition() -> None:
    t = torch.tensor([[5.0, -5.0], [-5.0, 5.0]])
    assert L.competition(t, None).item() == 0.0
    assert L.competition(t, t).item() == pytest.approx(1.0)
    disagree = L.competition(t, -t)
    assert disagree.item() < 0.1
    assert 0.0 <= disagree.item() <= 1.0


# --- augmentation --------------------------------------------------------------------------
def test_random_time_shift_roll_is_per_sample_roll() -> None:
    x = torch.arange(2 * 3 * 10.0).view(2, 3, 10).requires_grad_(True)
    y = random_time_shift(x, 4, gen(), mode="roll")
    for i in range(2):
        matches = [s for s in range(-4, 5) if torch.equal(y[i], torch.roll(x[i], s, dims=-1))]
        assert len(matches) == 1
    (y * torch.arange(10.0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Deterministic for a given generator; max_shift 0 is the identity.
    assert torch.equal(y, random_time_shift(x, 4, gen(), mode="roll"))
    assert random_time_shift(x, 0, gen()) is x


def test_random_time_shift_zero_pads() -> None:
    x = torch.ones(64, 1, 10)
    y = random_time_shift(x, 3, gen(), mode="zero")
    zeros = (y == 0).sum(dim=(1, 2))
    assert zeros.max() <= 3 and zeros.max() > 0
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        random_time_shift(x, 3, gen(), mode="wrap")  # type: ignore[arg-type]


def test_random_amplitude_scale() -> None:
    x = torch.ones(100, 1, 5)
    y = random_amplitude_scale(x, 0.1, gen())
    scale = y[:, 0, 0]
    assert scale.min() >= 0.9 and scale.max() <= 1.1 and scale.std() > 0
    assert torch.equal(y, y[:, :, :1].expand_as(y))
    assert random_amplitude_scale(x, 0.0, gen()) is x


# --- targets -------------------------------------------------------------------------------
def test_balanced_labels() -> None:
    labels = balanced_labels(11, 3, gen())
    counts = torch.bincount(labels, minlength=3)
    assert counts.sum() == 11 and counts.max() - counts.min() <= 1


def test_make_targets_hard() -> None:
    t = make_targets(10, 2, "hard", gen())
    assert t.dtype == torch.float32 and t.shape == (10, 2)
    assert torch.equal(t.sum(1), torch.ones(10))
    assert set(t.unique().tolist()) == {0.0, 1.0}
    assert torch.bincount(t.argmax(1)).tolist() == [5, 5]


@pytest.mark.parametrize("k", [2, 3])
def test_make_targets_soft(k: int) -> None:
    n = 600
    t = make_targets(n, k, "soft", gen())
    assert torch.allclose(t.sum(1), torch.ones(n))
    assert (t >= 0).all()
    assert torch.bincount(t.argmax(1), minlength=k).tolist() == [n // k] * k
    if k == 2:
        p1 = t[:, 1]
        # p(class 1) ~ U(0, 1): covers both sides of the boundary, near-uniformly.
        assert p1.min() < 0.05 and p1.max() > 0.95
        assert abs(p1.mean().item() - 0.5) < 0.05
        assert ((p1 > 0.4) & (p1 < 0.6)).float().mean().item() == pytest.approx(0.2, abs=0.06)
    assert torch.equal(t, make_targets(n, k, "soft", gen()))
    assert not torch.equal(t, make_targets(n, k, "soft", gen(1)))


def test_make_targets_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_targets(4, 2, "fuzzy", gen())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_targets(4, 1, "hard", gen())


def test_identity_mixture() -> None:
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    uniform = torch.full((6, 4), 0.25)
    assert L.identity_mixture(logits, uniform).item() == pytest.approx(
        L.identity_uniform(logits).item(), abs=1e-6
    )
    targets = torch.softmax(logits, dim=1)
    assert L.identity_mixture(logits, targets).item() == pytest.approx(0.0, abs=1e-6)
    stacked = torch.cat([logits, logits])  # an ensemble of two identical members
    assert L.identity_mixture(stacked, targets).item() == pytest.approx(0.0, abs=1e-6)
    assert L.identity_mixture(logits, uniform.roll(1, 0)).item() > 0
