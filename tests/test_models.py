from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from bench.cnn_block import MaxIndicesGroupMax1d, textbook_blocks
from stimuli.models import MODELS, build_model, list_models
from stimuli.models.cnn import GroupMax1d

CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "model"
SHAPES = [(1, 1200), (4, 60), (1, 240)]  # (n_chans, n_times)
N_OUTPUTS = 2


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a shared CPU each of the RNNs'
    hundreds of per-step parallel regions can wait for a time slice (20 s instead of 0.2 s)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list_models())
def test_model_contract(name: str, shape: tuple[int, int]) -> None:
    n_chans, n_times = shape
    torch.manual_seed(0)
    model = build_model(name, n_chans=n_chans, n_outputs=N_OUTPUTS, n_times=n_times)
    assert isinstance(model.embedding_dim, int)
    assert isinstance(model.classifier, nn.Linear)
    x = torch.randn(3, n_chans, n_times)

    model.eval()
    with torch.no_grad():
        logits = model(x)
        z = model.embed(x)
        assert logits.shape == (3, N_OUTPUTS)
        assert z.shape == (3, model.embedding_dim)
        torch.testing.assert_close(model.classifier(z), logits)

    # Stimulus synthesis differentiates a frozen (eval-mode) teacher w.r.t. its input.
    xg = x.clone().requires_grad_(True)
    model(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0

    model.train()
    model.zero_grad()
    xg = x.clone().requires_grad_(True)
    weights = torch.randn(3, N_OUTPUTS)
    (model(xg) * weights).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, pname
            assert torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("path", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_instantiates(path: Path) -> None:
    assert path.stem in MODELS, f"{path.name} does not name a registered model"
    factory = hydra.utils.instantiate(OmegaConf.load(path))
    assert callable(factory)
    model = factory(n_chans=1, n_outputs=N_OUTPUTS, n_times=240)
    assert type(model) is MODELS[path.stem]
    assert model.eval()(torch.randn(2, 1, 240)).shape == (2, N_OUTPUTS)


def test_every_model_has_a_config() -> None:
    assert sorted(p.stem for p in CONF_DIR.glob("*.yaml")) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_seed_reproducible(name: str) -> None:
    x = torch.randn(2, 1, 240)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(name, n_chans=1, n_outputs=N_OUTPUTS, n_times=240).eval()
        with torch.no_grad():
            outs.append(model(x))
    assert torch.equal(outs[0], outs[1])


def test_unknown_name() -> None:
    with pytest.raises(KeyError) as err:
        build_model("no-such-model", n_chans=1, n_outputs=2, n_times=60)
    for name in list_models():
        assert name in str(err.value)


def test_cnn_has_batchnorm() -> None:
    model = build_model("cnn", n_chans=1, n_outputs=2, n_times=1200)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) >= 3


@pytest.mark.parametrize("n_times", [1200, 1203, 61])
def test_cnn_pooling_matches_relu_then_maxpool_bit_for_bit(n_times: int) -> None:
    """GroupMax1d before the ReLU gives ReLU → MaxPool1d's outputs and gradients exactly (the
    teachers, stimuli and students of earlier runs stay what they were)."""
    torch.manual_seed(0)
    model = build_model("cnn", n_chans=2, n_outputs=2, n_times=n_times).train()
    reference = textbook_blocks(model)
    assert any(isinstance(m, nn.MaxPool1d) for m in reference.modules())
    x = torch.randn(16, 2, n_times)
    grads = []
    for net in (model, reference):
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(1)  # the same dropout mask
        out = net(xi)
        out.square().sum().backward()
        grads.append((out.detach(), xi.grad, [p.grad for p in net.parameters()]))
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = grads
    assert torch.equal(out_a, out_b)
    assert torch.equal(gx_a, gx_b)
    assert all(torch.equal(a, b) for a, b in zip(gp_a, gp_b, strict=True))


@pytest.mark.parametrize("kernel_size", [2, 4, 5])
def test_group_max_routes_ties_like_torch_max(kernel_size: int) -> None:
    """Windows with flat stretches give tied maxima: the gradient goes to the first of them,
    as `Tensor.max(dim=-1)` sends it, and the values are max's (a remainder is dropped)."""
    torch.manual_seed(0)
    x = torch.randint(-2, 3, (8, 3, 41)).float()  # five levels: most groups hold a tie
    weights = torch.randn(8, 3, 41 // kernel_size)
    grads = []
    for pool in (GroupMax1d(kernel_size), MaxIndicesGroupMax1d(kernel_size)):
        xi = x.clone().requires_grad_(True)
        out = pool(xi)
        (out * weights).sum().backward()
        grads.append((out.detach(), xi.grad))
    (out_a, grad_a), (out_b, grad_b) = grads
    assert torch.equal(out_a, out_b)
    assert torch.equal(grad_a, grad_b)
    assert (grad_a != 0).sum() == out_a.numel()  # one winner per group, ties included
