"""The training step: forward reuse and batched D passes give the original's (literal) losses and gradients."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
import torch

from model import build_networks
from model.original_keys import map_original_key, map_original_state_dict
from scripts.core.seeding import seed_everything
from scripts.training import GANTrainer, LossWeights, adversarial_loss
from tests.helpers import reference_weights


def _trainers(**optimised):
    seed_everything(0)
    nets = build_networks(8, with_discriminator=True)
    return GANTrainer(copy.deepcopy(nets), mode="literal"), GANTrainer(nets, mode="reuse", **optimised)


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 32, 32, generator=g)
    y = (torch.rand(2, 3, 32, 32, generator=g) > 0.8).float()
    return x, y


def _index_labels(y: torch.Tensor) -> torch.Tensor:
    """2023 class indices from a 3-channel (artery, uncertain, vein) map: uncertain wins, then artery, vein."""
    return torch.where(y[:, 1] > 0, 3, torch.where(y[:, 0] > 0, 1, torch.where(y[:, 2] > 0, 2, 0))).long()


def test_forward_reuse_matches_literal_over_steps():
    literal, reuse = _trainers()
    for step in range(2):
        x, y = _batch(step)
        a, b = literal.step(x, y), reuse.step(x, y)
        for k in a:
            assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-5, abs=1e-6), (step, k)
    for name in reuse.nets:
        for (pn, p1), (_, p2) in zip(literal.nets[name].named_parameters(), reuse.nets[name].named_parameters()):
            assert torch.allclose(p1, p2, rtol=1e-4, atol=1e-6), (name, pn)


@pytest.mark.parametrize("net", ["G_A", "G", "D"])
def test_channels_last_keeps_outputs_and_gradients(net):
    seed_everything(0)
    a = build_networks(8, with_discriminator=True)[net]
    b = copy.deepcopy(a).to(memory_format=torch.channels_last)
    x, y = _batch()

    def run(model, fmt):
        inp = x.contiguous(memory_format=fmt)
        if net == "G":
            outs = model(inp, torch.sigmoid(y), y)
            sum(o.square().mean() for o in outs).backward()
            return outs[0]
        out = model(inp, y) if net == "D" else model(inp)
        out.square().mean().backward()
        return out

    oa, ob = run(a, torch.contiguous_format), run(b, torch.channels_last)
    assert (oa - ob).abs().max() <= 1e-4 * oa.abs().max()
    ga = torch.cat([p.grad.flatten() for p in a.parameters()])
    gb = torch.cat([p.grad.flatten() for p in b.parameters()])
    assert (ga - gb).abs().max() <= 1e-4 * ga.abs().max()


def test_fused_adam_gives_the_same_update():
    params = [torch.randn(50, requires_grad=True) for _ in range(2)]
    copies = [p.detach().clone().requires_grad_(True) for p in params]
    opt_a = torch.optim.Adam(params, lr=8e-4, betas=(0.5, 0.999))
    opt_b = torch.optim.Adam(copies, lr=8e-4, betas=(0.5, 0.999), fused=True)
    for step in range(3):
        for p, q in zip(params, copies):
            g = torch.randn(50, generator=torch.Generator().manual_seed(step))
            p.grad, q.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    for p, q in zip(params, copies):
        assert torch.allclose(p, q, atol=1e-7)


def test_optimised_trainer_losses_track_literal():
    literal, fast = _trainers(channels_last=True, fused_adam=True)
    for step in range(2):
        x, y = _batch(step)
        a, b = literal.step(x, y), fast.step(x, y)
        # float noise from other conv kernels is amplified by Adam's first steps (each weight moves
        # by about +-lr whatever its gradient's size), so later updates in a step differ slightly
        for k in a:
            assert float(a[k]) == pytest.approx(float(b[k]), rel=5e-3), (step, k)


def test_literal_moves_batchnorm_statistics_twice():
    literal, reuse = _trainers()
    x, y = _batch()
    literal.step(x, y)
    reuse.step(x, y)
    bn = "encoder.inc.conv1.1.num_batches_tracked"
    assert int(literal.nets["G_A"].state_dict()[bn]) == 2
    assert int(reuse.nets["G_A"].state_dict()[bn]) == 1


def test_step_updates_every_network_and_schedulers_see_losses():
    _, trainer = _trainers()
    before = {k: copy.deepcopy(n.state_dict()) for k, n in trainer.nets.items()}
    trainer.step(*_batch())
    for k, net in trainer.nets.items():
        w = "head.weight"
        assert not torch.equal(before[k][w], net.state_dict()[w]), k
    assert trainer.scheds["G"].last_epoch == 1 and trainer.scheds["D"].last_epoch == 1


def test_adversarial_loss_has_no_double_sigmoid():
    logits = torch.tensor([2.0, -1.0])
    expected = torch.nn.functional.softplus(-logits).mean()  # -log(sigmoid(logits))
    assert adversarial_loss(logits, True).item() == pytest.approx(expected.item())


def test_bf16_autocast_losses_stay_close_to_fp32():
    fp32, _ = _trainers()
    _, amp = _trainers(amp_dtype=torch.bfloat16)
    for step in range(3):
        x, y = _batch(step)
        a, b = fp32.step(x, y), amp.step(x, y)
        for k in a:  # bf16 keeps 8 bits of mantissa: losses agree to a few percent
            assert float(b[k]) == pytest.approx(float(a[k]), rel=0.05), (step, k)


def test_fp16_with_gradient_scaler_runs_and_tracks_fp32():
    fp32, _ = _trainers()
    _, half = _trainers(amp_dtype=torch.float16)
    assert half.scaler.is_enabled()
    x, y = _batch()
    a, b = fp32.step(x, y), half.step(x, y)
    for k in a:
        assert float(b[k]) == pytest.approx(float(a[k]), rel=0.05), k
    assert "scale" in half.state_dict()["scaler"]


def test_double_sigmoid_option_reproduces_the_original_bounded_loss():
    logits = torch.tensor([-20.0, 20.0])
    loss = adversarial_loss(logits, True, double_sigmoid=True)
    # sigmoid -> (0, 1), then BCE-with-logits against 1: mean of softplus(-0) and softplus(-1)
    expected = (torch.nn.functional.softplus(torch.tensor(0.0)) + torch.nn.functional.softplus(torch.tensor(-1.0))) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert adversarial_loss(logits, True).item() > 9  # without it, a confident wrong D costs ~20


# --- batched D passes: exact in float64 -------------------------------------------------------


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-300))


@pytest.mark.parametrize("variant", ["v2021", "v2023"])
def test_batched_step_equals_literal_in_float64_over_steps(variant):
    """Several steps from the same state: the batched step (2B and 3B D calls, ghost batch norm, one
    backward for the three generators) gives the literal step's losses, parameters, D buffers and
    learning rates to 1e-9 relative; the generators' BatchNorm statistics follow the reuse rule
    (moved once per step, where literal moves them twice with the same batch statistics).

    Each step starts both trainers from the literal trainer's state, so rounding noise cannot
    compound: Adam divides by sqrt(v) + 1e-8, so for weights whose gradient is near zero (exactly
    zero for the biases of convolutions that feed a BatchNorm) it turns 1e-16 rounding noise into
    parameter changes of 1e-9 per step, and a GAN makes such differences grow step after step."""
    seed_everything(0)
    nets = {k: v.double() for k, v in build_networks(8, with_discriminator=True, variant=variant).items()}
    literal = GANTrainer(copy.deepcopy(nets), mode="literal", fused_adam=True, variant=variant)
    batched = GANTrainer(nets, mode="batched", fused_adam=True, variant=variant)
    m = 0.1  # BatchNorm momentum
    for step in range(4):
        for k, net in batched.nets.items():
            net.load_state_dict(literal.nets[k].state_dict())
        batched.load_state_dict(copy.deepcopy(literal.state_dict()))
        before = {k: copy.deepcopy(dict(n.named_buffers())) for k, n in literal.nets.items()}
        g = torch.Generator().manual_seed(step)
        x = torch.randn(2, 3, 64, 64, generator=g, dtype=torch.float64)
        y = (torch.rand(2, 3, 64, 64, generator=g) > 0.8).double()
        if variant == "v2023":
            y = _index_labels(y)
        a, b = literal.step(x, y), batched.step(x, y)
        for k in a:
            assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-9), (step, k)
        for k in ("G", "D"):
            assert float(batched.scheds[k].lr) == float(literal.scheds[k].lr)
        for name in nets:
            pa, pb = dict(literal.nets[name].named_parameters()), dict(batched.nets[name].named_parameters())
            for pn in pa:
                assert _rel(pa[pn], pb[pn]) <= 1e-9, (step, name, pn, _rel(pa[pn], pb[pn]))
            ba, bb = dict(literal.nets[name].named_buffers()), dict(batched.nets[name].named_buffers())
            for bn in ba:
                if name == "D":
                    assert _rel(ba[bn], bb[bn]) <= 1e-9, (step, name, bn)
                    continue
                # a layer called c times per forward (FuseUp's shared pair BN: twice) moves its statistics by
                # the affine map r -> (1-m)^c r + K per forward; reuse applies it once, literal twice
                prefix = bn.rsplit(".", 1)[0]
                calls = int(bb[f"{prefix}.num_batches_tracked"]) - int(before[name][f"{prefix}.num_batches_tracked"])
                assert calls in (1, 2), (name, prefix)
                if bn.endswith("num_batches_tracked"):
                    assert int(ba[bn]) - int(before[name][bn]) == 2 * calls
                else:
                    keep = (1 - m) ** calls
                    k_shift = bb[bn] - keep * before[name][bn]
                    assert _rel(ba[bn], keep * bb[bn] + k_shift) <= 1e-9, (step, name, bn)


@pytest.mark.parametrize("variant", ["v2021", "v2023"])
def test_reuse_and_batched_modes_run_in_float32_and_track_literal(variant):
    seed_everything(0)
    nets = build_networks(8, with_discriminator=True, variant=variant)
    trainers = {m: GANTrainer(copy.deepcopy(nets), mode=m, variant=variant) for m in ("literal", "reuse", "batched")}
    x, y = _batch()
    if variant == "v2023":
        y = _index_labels(y)
    losses = {m: t.step(x, y) for m, t in trainers.items()}
    for k in losses["literal"]:
        for m in ("reuse", "batched"):
            assert float(losses[m][k]) == pytest.approx(float(losses["literal"][k]), rel=1e-4), (m, k)


def test_unknown_step_mode_is_refused():
    with pytest.raises(ValueError, match="step mode"):
        GANTrainer(build_networks(4, with_discriminator=True), mode="fast")


# --- the literal step's Adam is torch's Adam with the Python-float rate, to the last bit --------


def _checked_against_python_float_adam(opt: torch.optim.Optimizer, lr: float, seen: list) -> None:
    """Wrap ``opt.step``: after each real update, redo it with a fresh ``torch.optim.Adam(lr=<float>)``
    from copies of the same weights, gradients and moments, and require identical bits."""
    real_step = opt.step

    def step(*args, **kwargs):
        params = opt.param_groups[0]["params"]
        copies = [p.detach().clone().requires_grad_(True) for p in params]
        for c, p in zip(copies, params):
            c.grad = p.grad.detach().clone()
        reference = torch.optim.Adam(copies, lr=lr, betas=opt.defaults["betas"], eps=opt.defaults["eps"])
        if opt.state:
            state = copy.deepcopy(opt.state_dict())
            state["param_groups"][0]["lr"] = lr
            reference.load_state_dict(state)
        out = real_step(*args, **kwargs)
        reference.step()
        for i, (p, c) in enumerate(zip(params, copies)):
            assert torch.equal(p.detach(), c.detach()), f"parameter {i} differs from torch.optim.Adam(lr={lr})"
        seen.append(1)
        return out

    opt.step = step


def test_literal_step_adam_is_bit_identical_to_python_float_adam():
    seed_everything(0)
    trainer = GANTrainer(build_networks(4, with_discriminator=True), mode="literal")
    seen: list = []
    for opt in trainer.opts.values():
        _checked_against_python_float_adam(opt, 8e-4, seen)
    for step in range(3):
        trainer.step(*_batch(step))
    assert len(seen) == 3 * 6  # six Adam updates per step, each compared


def test_step_updates_every_state_tensor_in_place():
    """A captured CUDA graph replays into the memory it saw at capture: after the first step (which
    creates Adam's moments), no weight, buffer, moment, rate or scheduler state may be rebound."""
    for mode in ("literal", "reuse", "batched"):
        seed_everything(0)
        trainer = GANTrainer(build_networks(4, with_discriminator=True), mode=mode, fused_adam=mode != "literal")
        trainer.step(*_batch(0))
        before = [(t, t.data_ptr(), t.detach().clone()) for t in trainer.state_tensors()]
        for step in range(1, 3):
            trainer.step(*_batch(step))
        after = trainer.state_tensors()
        assert len(after) == len(before), mode
        assert all(a is b[0] and a.data_ptr() == b[1] for a, b in zip(after, before)), mode
        assert sum(not torch.equal(t, old) for t, _, old in before) > len(before) // 2, mode  # they did change


def test_auto_step_mode_follows_the_measured_rule():
    from scripts.training import auto_step_mode

    assert auto_step_mode(torch.device("cpu"), 32) == "reuse"  # README "Performance": reuse fastest at n = 32
    assert auto_step_mode(torch.device("cpu"), 8) == "batched"  # the demo's width
    assert auto_step_mode(torch.device("cuda"), 32) == "batched"


# --- the 2023 variant: its literal step is the authors' 2023 code's step ----------------------

STEP_2023 = Path(__file__).parents[2] / "data" / "v2023_step_reference.pt"
ORIGINAL_NAMES = {"branch_a": "G_A", "branch_v": "G_V", "main": "G", "discriminator": "D"}


def _sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().float().contiguous().numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def v2023_steps():
    """Three literal v2023 steps (one CPU thread, as the fixture was made) from the fixture's weights and
    batch: (fixture, our losses per step, our per-tensor (sha256, sum) per step under the original keys)."""
    ref = torch.load(STEP_2023, weights_only=True)
    nets = build_networks(32, with_discriminator=True, variant="v2023")
    for orig, ours in ORIGINAL_NAMES.items():
        state = map_original_state_dict(reference_weights(ref, orig), generator=orig != "discriminator")
        nets[ours].load_state_dict(state)
    h = ref["hyper"]
    trainer = GANTrainer(nets, h["lr"], LossWeights(h["alpha"], h["beta"], h["gamma"]), "literal", variant="v2023")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    losses, states = [], []
    try:
        for _ in range(len(ref["states"])):
            losses.append({k: float(v) for k, v in trainer.step(ref["x"], ref["label"]).items()})
            states.append(
                {
                    orig: {
                        k: (_sha256(t), float(t.double().sum()))
                        for k, t in (
                            (k, nets[ours].state_dict()[map_original_key(k, orig != "discriminator")])
                            for k, _ in ref["keys"][orig]
                        )
                    }
                    for orig, ours in ORIGINAL_NAMES.items()
                }
            )
    finally:
        torch.set_num_threads(threads)
    return ref, losses, states


def this_cpu() -> dict:
    """This machine's CPU as the fixture's builder records it (model name, flags)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("builder", STEP_2023.with_name("build_v2023_step_reference.py"))
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    return builder.cpu()


def test_literal_v2023_step_is_the_2023_codes_step(v2023_steps):
    """The fixture is three steps of the authors' own ``train_net`` (f7de674) on the CPU with one thread
    (tests/data/build_v2023_step_reference.py). With the same torch on the same CPU (model and flags:
    the kernels, and so the order of every sum) the literal v2023 step must give the same bits: every loss of every step and every weight and
    BatchNorm buffer of the four networks after each step. Elsewhere another kernel sums in another
    order, as another thread count does for the 2023 code itself: then each difference must stay
    within twice that code's own difference between one and two threads (recorded in the fixture)."""
    ref, losses, states = v2023_steps
    ours_of = {"Loss/D_train": ["D_A", "D_V", "D"], "Loss/G_train_A": ["G_A", "G_V"], "Loss/G_train": ["G"]}
    same_kernels = (
        ref["torch"] == str(torch.__version__)
        and ref["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        and ref["cpu"] == this_cpu()
    )
    for step, (expected, got, state) in enumerate(zip(ref["losses"], losses, states)):
        noise = ref["noise"][step]
        for tag, names in ours_of.items():
            for name, value in zip(names, expected[tag]):
                if same_kernels:
                    assert got[name] == value, (step, name, got[name], value)
                else:
                    assert abs(got[name] - value) <= 2 * noise["losses"] * abs(value), (step, name)
        for orig, tensors in ref["states"][step].items():
            for key, rec in tensors.items():
                sha, total = state[orig][key]
                if same_kernels:
                    assert sha == rec["sha256"], (step, orig, key, total - rec["sum"])
                else:
                    diff = abs(total - rec["sum"]) / max(rec["abs_sum"], 1e-30)
                    assert diff <= 2 * noise["nets"][orig], (step, orig, key, diff)


def test_v2023_targets_are_class_indices_and_named_when_wrong():
    trainer = GANTrainer(build_networks(4, with_discriminator=True, variant="v2023"), variant="v2023")
    x, y = _batch()
    with pytest.raises(ValueError, match=r"v2023 targets must be \(B, H, W\) int64 class indices.*\(2, 3, 32, 32\)"):
        trainer.step(x, y)
    v2021 = GANTrainer(build_networks(4, with_discriminator=True))
    with pytest.raises(ValueError, match=r"v2021 targets must be \(B, 3, H, W\).*\(2, 32, 32\) torch.int64"):
        v2021.step(x, _index_labels(y))


def test_v2023_schedulers_step_once_per_epoch_with_its_last_losses():
    """2021 steps the plateau schedulers in every step; 2023 at the end of each epoch only, with the last
    step's G and D losses."""
    seed_everything(0)
    v2021 = GANTrainer(build_networks(4, with_discriminator=True))
    v2023 = GANTrainer(build_networks(4, with_discriminator=True, variant="v2023"), variant="v2023")
    x, y = _batch()
    for _ in range(2):
        v2021.step(x, y)
        last = v2023.step(x, _index_labels(y))
    assert v2021.scheds["G"].last_epoch == 2 and v2023.scheds["G"].last_epoch == 0
    v2021.end_epoch(last)
    v2023.end_epoch(last)
    assert v2021.scheds["G"].last_epoch == 2
    assert v2023.scheds["G"].last_epoch == 1 and v2023.scheds["D"].last_epoch == 1
    assert float(v2023.scheds["G"].best) == float(last["G"]) and float(v2023.scheds["D"].best) == float(last["D"])
