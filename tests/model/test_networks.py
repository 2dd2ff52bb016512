"""The networks: reference outputs of the original implementation, shapes, sizes, round trips."""
from __future__ import annotations

import io
import math

import pytest
import torch

from model import BranchGenerator, Discriminator, FusionGenerator, map_original_state_dict

SPEC_PARAMS = {"branch": 8_637_891, "main": 9_136_926, "discriminator": 8_638_275}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def reference_weights(ref: dict, net: str) -> dict[str, torch.Tensor]:
    """SPEC section 8's rule for the i-th original key of ``net``."""
    out = {}
    for i, (key, shape) in enumerate(ref["keys"][net]):
        g = torch.Generator().manual_seed(ref["seeds"][net] + i)
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):
            out[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(shape, generator=g)
    return out


@pytest.fixture(scope="module")
def reference(reference_dir):
    return torch.load(reference_dir / "miccai2021_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def reference_nets(reference):
    nets = {"branch_a": BranchGenerator(), "branch_v": BranchGenerator(), "main": FusionGenerator(),
            "discriminator": Discriminator()}
    for name, net in nets.items():
        state = map_original_state_dict(reference_weights(reference, name), generator=name != "discriminator")
        net.load_state_dict(state, strict=True)
        net.eval()
    return nets


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_parameter_counts_match_spec_and_reference(reference):
    assert n_params(BranchGenerator()) == SPEC_PARAMS["branch"] == reference["param_counts"]["branch_a"]
    assert n_params(FusionGenerator()) == SPEC_PARAMS["main"] == reference["param_counts"]["main"]
    assert n_params(Discriminator()) == SPEC_PARAMS["discriminator"] == reference["param_counts"]["discriminator"]


def test_reference_outputs_reproduced(reference, reference_nets):
    x = reference["x"]
    with torch.no_grad():
        a = reference_nets["branch_a"](x)
        v = reference_nets["branch_v"](x)
        main, s1, s2, s3 = reference_nets["main"](x, torch.sigmoid(a), torch.sigmoid(v))
        d = reference_nets["discriminator"](x, torch.sigmoid(main))
    outputs = {"branch_a_logits": a, "branch_v_logits": v, "main_logits": main, "side1": s1, "side2": s2,
               "side3": s3, "disc_logits": d}
    for name, out in outputs.items():
        assert rel_err(out, reference[name]) < 1e-4, name


def test_reference_keys_cover_our_state_dicts_exactly(reference):
    for name, net in (("branch_a", BranchGenerator()), ("main", FusionGenerator()), ("discriminator", Discriminator())):
        original = [k for k, _ in reference["keys"][name]]
        mapped = map_original_state_dict(dict.fromkeys(original, torch.zeros(1)), generator=name != "discriminator")
        assert set(mapped) == set(net.state_dict())


def test_dataparallel_prefix_is_stripped(reference):
    state = reference_weights(reference, "branch_a")
    prefixed = {f"module.{k}": v for k, v in state.items()}
    BranchGenerator().load_state_dict(map_original_state_dict(prefixed), strict=True)


@pytest.mark.parametrize("n", [8, 16, 32])
@pytest.mark.parametrize("hw", [(64, 64), (48, 80)])
def test_shapes_and_backward(n, hw):
    x = torch.randn(2, 3, *hw)
    ga, g, d = BranchGenerator(n), FusionGenerator(n), Discriminator(n)
    a = ga(x)
    assert a.shape == (2, 3, *hw)
    outs = g(x, torch.sigmoid(a).detach(), torch.sigmoid(a).detach())
    assert len(outs) == 4 and all(o.shape == (2, 3, *hw) for o in outs)
    dd = d(x, torch.sigmoid(outs[0]))
    assert dd.shape == (2, 3, *hw)
    (a.mean() + sum(o.mean() for o in outs) + dd.mean()).backward()
    assert all(p.grad is not None for p in g.parameters())
    assert all(p.grad is not None for p in ga.parameters())


def test_side_outputs_follow_width():
    g = FusionGenerator(8)
    assert g.side1.blocks[-1].conv.out_channels == 8
    assert g.head.in_channels == 8 + 6


@pytest.mark.parametrize("hw", [(60, 64), (64, 70), (33, 33)])
def test_size_not_divisible_by_16_is_a_clear_error(hw):
    with pytest.raises(ValueError, match="divisible by 16"):
        BranchGenerator(8)(torch.randn(1, 3, *hw))


@pytest.mark.parametrize("cls", [BranchGenerator, FusionGenerator, Discriminator])
def test_state_dict_round_trip(cls):
    torch.manual_seed(0)
    a, b = cls(8).eval(), cls(8).eval()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        if cls is FusionGenerator:
            p = torch.rand(1, 3, 32, 32)
            assert torch.equal(a(x, p, p)[0], b(x, p, p)[0])
        elif cls is Discriminator:
            assert torch.equal(a(x, x), b(x, x))
        else:
            assert torch.equal(a(x), b(x))
