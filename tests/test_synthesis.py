"""End-to-end tests of stimulus synthesis against a tiny pre-trained teacher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from stimuli.synthesis import StimulusGenerator, SynthesisConfig, shard_sizes, synthesize
from stimuli.synthesis.parametrization import GaussianSmoothing
from stimuli.synthesis.synthesize import DRAW_SEED_STRIDE, shard_seed

T = 256
CONF = Path(__file__).resolve().parent.parent / "conf" / "synthesis" / "default.yaml"


class TinyNet(nn.Module):
    """Conv1d+BN+ReLU twice, global average pool, linear `classifier`; `embed` = pooled features."""

    def __init__(self, n_chans: int = 1, n_out: int = 2, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(n_chans, width, 7, stride=4, padding=3),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Conv1d(width, 2 * width, 7, stride=4, padding=3),
            nn.BatchNorm1d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, n_out)

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


def toy_data(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Class 0: slow sine, class 1: fast sine; offset and scale away from N(0, 1) so the BN
    running statistics are far from trivial."""
    y = torch.randint(0, 2, (n,), generator=g)
    freq = torch.where(y == 1, 0.8, 0.1)[:, None]
    phase = torch.rand(n, 1, generator=g) * 6.28
    x = 1.5 * torch.sin(freq * torch.arange(T) + phase) + 0.5 + 0.3 * torch.randn(n, T, generator=g)
    return x[:, None], y


def pretrain(net: nn.Module, steps: int = 20, seed: int = 0, n_out: int = 2) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        x, y = toy_data(64, g)
        if n_out != 2:  # identity model: persons = random partition
            y = torch.randint(0, n_out, y.shape, generator=g)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Cores are shared; intra-op threads fighting over them are far slower than one thread.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = TinyNet()
    return pretrain(net)


@pytest.fixture(scope="module")
def identity_model() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = TinyNet(n_out=5)
    return pretrain(net, steps=5, seed=1, n_out=5)


def cfg(**overrides: Any) -> dict[str, Any]:
    weights = {"identity_uniform": 0.0, **overrides.pop("weights", {})}
    return {"steps": 5, "shard_size": 256, "max_shift": 8, **overrides, "weights": weights}


def run(teacher: nn.Module, n: int = 8, **kw: Any) -> dict[str, Any]:
    c = kw.pop("cfg", None) or cfg()
    return synthesize(teacher, n=n, n_chans=1, n_times=T, n_classes=2, cfg=c, **kw)


def test_teacher_is_pretrained(teacher: nn.Module) -> None:
    x, y = toy_data(128, torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (teacher(x).argmax(1) == y).float().mean() > 0.9
    bn = teacher.features[1]
    assert bn.running_mean.abs().max() > 0.1


def test_teacher_frozen_and_bn_in_eval_during_every_step(teacher: nn.Module) -> None:
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    bns = [m for m in teacher.modules() if isinstance(m, nn.BatchNorm1d)]
    seen: list[tuple[bool, bool]] = []  # (module.training, grad enabled) per BN forward
    handles = [
        m.register_forward_hook(
            lambda mod, i, o: seen.append((mod.training, torch.is_grad_enabled()))
        )
        for m in bns
    ]
    teacher.train()  # synthesis must force eval, then give the caller its mode back
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        out = run(teacher, cfg=cfg(steps=6))
    finally:
        for h in handles:
            h.remove()
    in_steps = [training for training, grad in seen if grad]
    assert len(in_steps) == 6 * len(bns)
    assert not any(training for training, _ in seen)
    assert teacher.training and all(m.training for m in teacher.modules())
    assert all(p.requires_grad for p in teacher.parameters())
    after = teacher.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before
    teacher.eval()
    assert out["x"].dtype == torch.float32 and out["x"].shape == (8, 1, T)


def test_lightning_train_keeps_frozen_models_in_eval(
    teacher: nn.Module, identity_model: nn.Module
) -> None:
    gen = StimulusGenerator(
        teacher,
        n=4,
        n_chans=1,
        n_times=T,
        n_classes=2,
        cfg=cfg(smoothing=0),
        identity_model=identity_model,
    )
    gen.train()
    assert gen.training
    assert not any(m.training for m in teacher.modules())
    assert not any(m.training for m in identity_model.modules())
    assert [n for n, p in gen.named_parameters() if p.requires_grad] == ["latent"]
    assert gen.stimuli is gen.latent  # without the low-pass the stimuli are the parameter
    teacher.requires_grad_(True)
    identity_model.requires_grad_(True)


def test_loss_decreases_and_teacher_agrees(teacher: nn.Module) -> None:
    out = run(teacher, n=32, cfg=cfg(steps=60, targets="hard", lr=0.1))
    hist = out["history"][0]
    assert len(hist) == 60
    assert sum(hist[-3:]) < 0.7 * sum(hist[:3])
    assert out["teacher_agreement"] >= 0.9
    assert torch.equal(out["labels"], out["targets"].argmax(1))
    assert torch.bincount(out["labels"]).tolist() == [16, 16]
    assert torch.allclose(out["teacher_probs"].sum(1), torch.ones(32))
    assert set(out["losses"]) == {"class", "bn", "tv", "l2", "total"}
    assert out["x"].abs().max() <= 4.0
    assert out["seconds"] > 0


def test_seed_determinism(teacher: nn.Module) -> None:
    a = run(teacher, seed=3)
    b = run(teacher, seed=3)
    c = run(teacher, seed=4)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["targets"], b["targets"])
    assert not torch.equal(a["x"], c["x"])


def test_shards_are_independent(teacher: nn.Module) -> None:
    c = cfg(shard_size=4)
    whole = run(teacher, cfg=c, seed=7)
    first = run(teacher, cfg=c, seed=7, shard_index_range=(0, 1))
    second = run(teacher, cfg=c, seed=7, shard_index_range=range(1, 2))
    assert whole["shard_indices"] == [0, 1] and second["shard_indices"] == [1]
    for key in ("x", "targets", "labels", "teacher_probs"):
        assert torch.equal(whole[key], torch.cat([first[key], second[key]])), key
    with pytest.raises(ValueError, match="shard_index_range"):
        run(teacher, cfg=c, shard_index_range=(1, 3))


def test_a_draw_reseeds_every_shard_and_draw_zero_is_seed_plus_shard(teacher: nn.Module) -> None:
    c = cfg(shard_size=4)
    base = run(teacher, cfg=c, seed=7)
    again = run(teacher, cfg={**c, "draw": 0}, seed=7)
    drawn = run(teacher, cfg={**c, "draw": 1}, seed=7)
    assert torch.equal(base["x"], again["x"])
    for i in range(2):  # neither shard repeats a shard of draw 0
        rows = slice(4 * i, 4 * i + 4)
        assert not torch.allclose(drawn["x"][rows], base["x"][rows])
    assert shard_seed(7, 1) == 8 and shard_seed(7, 1, draw=2) == 8 + 2 * DRAW_SEED_STRIDE
    with pytest.raises(ValueError, match="draw"):
        SynthesisConfig.from_any({**c, "draw": -1})


def test_shard_sizes() -> None:
    assert shard_sizes(10, 4) == [4, 4, 2]
    assert shard_sizes(8, 4) == [4, 4]
    with pytest.raises(ValueError):
        shard_sizes(0, 4)


def test_zero_weight_skips_term(teacher: nn.Module) -> None:
    class Exploding(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            raise AssertionError("identity model must not run when its weights are 0")

    out = run(teacher, cfg=cfg(steps=2, weights={"bn": 0.0, "tv": 0.0}), identity_model=Exploding())
    assert set(out["losses"]) == {"class", "l2", "total"}


def test_missing_models_raise_clear_errors(teacher: nn.Module) -> None:
    with pytest.raises(ValueError, match="identity_model"):
        run(teacher, cfg=cfg(weights={"identity_uniform": 1.0}))
    with pytest.raises(ValueError, match="centroids"):
        run(teacher, cfg=cfg(weights={"identity_centroid": 1.0}))
    with pytest.raises(ValueError, match="student"):
        run(teacher, cfg=cfg(weights={"competition": 1.0}))
    with pytest.raises(ValueError, match="unknown"):
        run(teacher, cfg=cfg(weights={"clas": 1.0}))


def test_all_terms_together(teacher: nn.Module, identity_model: nn.Module) -> None:
    student = TinyNet()
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    id_before = {k: v.clone() for k, v in identity_model.state_dict().items()}
    weights = {k: 0.5 for k in SynthesisConfig().weights}
    centroids = torch.randn(5, 16, generator=torch.Generator().manual_seed(0)).abs()
    out = run(
        teacher,
        cfg=cfg(steps=3, weights=weights, amp_jitter=0.1, shift_mode="zero", targets="soft"),
        identity_model=identity_model,
        centroids=centroids,
        student=student,
    )
    assert set(out["losses"]) == set(weights) | {"total"}
    assert all(torch.isfinite(torch.tensor(v)) for v in out["losses"].values())
    assert all(torch.equal(student_before[k], v) for k, v in student.state_dict().items())
    assert all(torch.equal(id_before[k], v) for k, v in identity_model.state_dict().items())
    assert all(p.grad is None for p in student.parameters())
    # Centroids in the identity model's embedding space.
    out = run(
        teacher,
        cfg=cfg(
            steps=2,
            centroid_space="identity",
            centroid_margin=0.5,
            weights={"identity_centroid": 1.0},
        ),
        identity_model=identity_model,
        centroids=centroids,
    )
    assert set(out["losses"]) == {"class", "bn", "tv", "l2", "identity_centroid", "total"}


def test_identity_uniform_term_decreases(teacher: nn.Module, identity_model: nn.Module) -> None:
    c = cfg(steps=15, lr=0.1, weights={"identity_uniform": 1.0, "class": 0.0, "bn": 0.0})
    gen = StimulusGenerator(
        teacher, n=16, n_chans=1, n_times=T, n_classes=2, cfg=c, identity_model=identity_model
    )
    first = gen.compute_terms(gen.stimuli)[0]["identity_uniform"].item()
    out = run(teacher, n=16, cfg=c, identity_model=identity_model)
    assert out["losses"]["identity_uniform"] < first


def test_default_config_file_matches_dataclass() -> None:
    loaded = SynthesisConfig.from_any(OmegaConf.load(CONF))
    assert loaded == SynthesisConfig()
    assert loaded.n == 1024 and loaded.shard_size == 256 and loaded.steps == 200
    assert loaded.betas == (0.5, 0.9) and loaded.clip == (-4.0, 4.0)
    with pytest.raises(ValueError, match="unknown"):
        SynthesisConfig.from_any({"stepz": 3})


def test_teacher_without_batchnorm_skips_bn_term() -> None:
    class NoBN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(1, 4, 5, stride=4)
            self.classifier = nn.Linear(4, 2)

        def embed(self, x: Tensor) -> Tensor:
            return torch.relu(self.conv(x)).mean(dim=2)

        def forward(self, x: Tensor) -> Tensor:
            return self.classifier(self.embed(x))

    teacher = NoBN()
    with pytest.warns(UserWarning, match="no BatchNorm"):
        out = run(teacher, cfg=cfg(steps=2))
    assert "bn" not in out["losses"]


def test_no_hooks_left_behind(teacher: nn.Module) -> None:
    run(teacher, cfg=cfg(steps=2, weights={"hidden": 1.0, "diversity": 1.0}))
    assert all(not m._forward_hooks for m in teacher.modules())


def test_identity_mixture_targets_are_balanced_person_mixtures(
    teacher: nn.Module, identity_model: nn.Module
) -> None:
    c = cfg(steps=15, lr=0.1, weights={"identity_mixture": 1.0, "class": 0.0, "bn": 0.0})
    gen = StimulusGenerator(
        teacher, n=20, n_chans=1, n_times=T, n_classes=2, cfg=c, identity_model=identity_model
    )
    targets = gen.identity_targets
    n_persons = identity_model(torch.zeros(1, 1, T)).shape[1]
    assert targets.shape == (20, n_persons)
    assert torch.allclose(targets.sum(1), torch.ones(20))
    counts = torch.bincount(targets.argmax(1), minlength=n_persons)
    assert counts.max() - counts.min() <= 1  # every person the largest share equally often
    first = gen.compute_terms(gen.stimuli)[0]["identity_mixture"].item()
    out = run(teacher, n=20, cfg=c, identity_model=identity_model)
    assert out["losses"]["identity_mixture"] < first


def test_teacher_ensemble_keeps_the_meaning_of_each_weight(teacher: nn.Module) -> None:
    import copy

    from stimuli.teacher import TeacherEnsemble

    pair = TeacherEnsemble([teacher, copy.deepcopy(teacher)]).eval()
    c = cfg(steps=1, max_shift=0)
    single = StimulusGenerator(teacher, n=8, n_chans=1, n_times=T, n_classes=2, cfg=c, seed=4)
    double = StimulusGenerator(pair, n=8, n_chans=1, n_times=T, n_classes=2, cfg=c, seed=4)
    one, logits_one = single.compute_terms(single.stimuli)
    two, logits_two = double.compute_terms(double.stimuli)
    # two identical members: the same probabilities, and the BN term per network, not summed
    assert torch.allclose(logits_one.softmax(1), logits_two.softmax(1), atol=1e-5)
    assert two["bn"].item() == pytest.approx(one["bn"].item(), rel=1e-5)
    assert two["class"].item() == pytest.approx(one["class"].item(), rel=1e-5)


def high_band_power(x: Tensor) -> float:
    """Share of the (mean-removed) power in the top third of the spectrum."""
    p = torch.fft.rfft(x - x.mean(-1, keepdim=True)).abs().pow(2)
    return float(p[..., 2 * p.shape[-1] // 3 :].sum() / p.sum())


def test_gaussian_smoothing_is_a_unit_gain_low_pass() -> None:
    noise = torch.randn(16, 2, T, generator=torch.Generator().manual_seed(0))
    assert torch.equal(GaussianSmoothing(0)(noise), noise)
    smooth = GaussianSmoothing(2.0)
    out = smooth(noise)
    assert out.shape == noise.shape
    assert torch.allclose(smooth(torch.full((1, 1, T), 3.0)), torch.full((1, 1, T), 3.0))
    assert out.std().item() == pytest.approx(smooth.gain, rel=0.1)  # what init divides by
    assert high_band_power(noise) > 0.3 and high_band_power(out) < 0.01
    with pytest.raises(ValueError, match=">= 0"):
        GaussianSmoothing(-1.0)
    with pytest.raises(ValueError, match=r"lower synthesis\.smoothing"):
        GaussianSmoothing(2.0)(noise[..., :8])


def test_depthwise_smoothing_is_each_series_filtered_on_its_own() -> None:
    """One depthwise convolution over every series gives what filtering each (reflect-padded)
    series with the kernel gives, and the same gradient to float rounding."""
    smooth = GaussianSmoothing(2.0)
    half = smooth.kernel.shape[-1] // 2
    x = torch.randn(5, 3, 50, generator=torch.Generator().manual_seed(1), requires_grad=True)
    weights = torch.randn(5, 3, 50, generator=torch.Generator().manual_seed(2))
    out = smooth(x)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    xr = x.detach().clone().requires_grad_(True)
    series = F.pad(xr.reshape(15, 1, 50), (half, half), mode="reflect")
    reference = F.conv1d(series, smooth.kernel).reshape(5, 3, 50)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), xr)
    assert torch.allclose(out, reference, atol=1e-6)
    assert torch.allclose(grad, grad_reference, atol=1e-6)
    assert not torch.allclose(grad, weights, atol=1e-2)  # the filter's adjoint, not identity


def test_smoothing_keeps_optimiser_jitter_out_of_the_stimuli(teacher: nn.Module) -> None:
    plain = run(teacher, n=16, cfg=cfg(steps=30, lr=0.1, smoothing=0))
    smooth = run(teacher, n=16, cfg=cfg(steps=30, lr=0.1, smoothing=2.0))
    assert high_band_power(plain["x"]) > 0.2  # white-noise start and Adam's per-sample steps
    assert high_band_power(smooth["x"]) < 0.01
    assert smooth["x"].std().item() == pytest.approx(1.0, abs=0.5)  # started at unit variance
    assert smooth["teacher_agreement"] >= 0.75
    assert smooth["x"].abs().max() <= 4.0
    again = run(teacher, n=16, cfg=cfg(steps=30, lr=0.1, smoothing=2.0))
    assert torch.equal(smooth["x"], again["x"])
