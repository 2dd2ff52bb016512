"""The networks: reference outputs of the original implementation, shapes, sizes, round trips."""

from __future__ import annotations

import io

import pytest
import torch

from model import (
    BranchGenerator,
    Discriminator,
    FeatureBranchGenerator,
    FusionGenerator,
    MeanFusionGenerator,
    build_discriminator,
    build_generators,
    describe_state,
    map_original_state_dict,
)
from tests.helpers import reference_weights

SPEC_PARAMS = {"branch": 8_637_891, "main": 9_136_926, "discriminator": 8_638_275}
SPEC_PARAMS_2023 = {"branch": 8_637_924, "main": 9_137_040, "discriminator": 8_638_596}  # SPEC 9.1


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def reference(reference_dir):
    return torch.load(reference_dir / "miccai2021_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def reference_nets(reference):
    nets = {
        "branch_a": BranchGenerator(),
        "branch_v": BranchGenerator(),
        "main": FusionGenerator(),
        "discriminator": Discriminator(),
    }
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
    outputs = {
        "branch_a_logits": a,
        "branch_v_logits": v,
        "main_logits": main,
        "side1": s1,
        "side2": s2,
        "side3": s3,
        "disc_logits": d,
    }
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


# ---- the 2023 release variant (SPEC 9.1) ----


@pytest.fixture(scope="module")
def reference_2023(reference_dir):
    return torch.load(reference_dir / "v2023_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def reference_nets_2023(reference_2023):
    nets = build_generators("v2023")
    nets = {
        "branch_a": nets["G_A"],
        "branch_v": nets["G_V"],
        "main": nets["G"],
        "discriminator": build_discriminator("v2023"),
    }
    for name, net in nets.items():
        state = map_original_state_dict(reference_weights(reference_2023, name), generator=name != "discriminator")
        net.load_state_dict(state, strict=True)
        net.eval()
    return nets


def test_2023_parameter_counts_match_spec_and_reference(reference_2023):
    nets = build_generators("v2023")
    counts = {
        "branch_a": n_params(nets["G_A"]),
        "main": n_params(nets["G"]),
        "discriminator": n_params(build_discriminator("v2023")),
    }
    assert counts == {
        "branch_a": SPEC_PARAMS_2023["branch"],
        "main": SPEC_PARAMS_2023["main"],
        "discriminator": SPEC_PARAMS_2023["discriminator"],
    }
    assert all(counts[k] == reference_2023["param_counts"][k] for k in counts)


def test_2023_reference_outputs_reproduced(reference_2023, reference_nets_2023):
    x, nets = reference_2023["x"], reference_nets_2023
    with torch.no_grad():
        a, fa = nets["branch_a"](x)
        v, fv = nets["branch_v"](x)
        main, s1, s2, s3 = nets["main"](x, fa, fv)
        d = nets["discriminator"](x, torch.softmax(main, dim=1))
    outputs = {
        "branch_a_logits": a,
        "branch_a_features": fa,
        "branch_v_logits": v,
        "branch_v_features": fv,
        "main_logits": main,
        "side1": s1,
        "side2": s2,
        "side3": s3,
        "disc_logits": d,
    }
    for name, out in outputs.items():
        assert out.shape == reference_2023[name].shape, name
        assert rel_err(out, reference_2023[name]) < 1e-4, name


def test_2023_keys_are_the_2021_keys(reference, reference_2023):
    for name in ("branch_a", "main", "discriminator"):
        assert [k for k, _ in reference_2023["keys"][name]] == [k for k, _ in reference["keys"][name]]
    nets = build_generators("v2023")
    for name, net in (("branch_a", nets["G_A"]), ("main", nets["G"]), ("discriminator", build_discriminator("v2023"))):
        mapped = map_original_state_dict(dict(reference_2023["keys"][name]), generator=name != "discriminator")
        assert {k: tuple(v) for k, v in mapped.items()} == {k: tuple(t.shape) for k, t in net.state_dict().items()}


def test_2023_fusion_is_the_mean_of_the_features_and_order_free():
    torch.manual_seed(0)
    g = MeanFusionGenerator(8).eval()
    x, fa, fv = torch.randn(1, 3, 32, 32), torch.rand(1, 8, 32, 32), torch.rand(1, 8, 32, 32)
    with torch.no_grad():
        out = g(x, fa, fv)[0]
        own = g.decoder(g.encoder(x))[-1]
        assert torch.allclose(out, g.head((fa + own + fv) / 3), atol=1e-6)
        assert torch.allclose(out, g(x, fv, fa)[0], atol=1e-5)


def test_2023_branch_features_feed_its_head():
    b = FeatureBranchGenerator(8).eval()
    with torch.no_grad():
        logits, feats = b(torch.randn(2, 3, 32, 48))
    assert logits.shape == (2, 4, 32, 48) and feats.shape == (2, 8, 32, 48)
    assert bool((feats >= 0).all())
    assert torch.allclose(logits, b.head(feats))


@pytest.mark.parametrize("variant", ["v2021", "v2023"])
@pytest.mark.parametrize("n", [8, 32])
def test_variant_detected_from_state_shapes(variant, n):
    nets = build_generators(variant, n)
    assert describe_state(nets["G_A"].state_dict()) == (variant, "branch", n)
    assert describe_state(nets["G"].state_dict()) == (variant, "fusion", n)
    assert (
        describe_state({"head.weight": torch.zeros(5, n, 1, 1), "encoder.inc.conv1.0.weight": torch.zeros(n, 3, 3, 3)})
        is None
    )
