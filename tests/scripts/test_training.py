"""The training step: forward reuse gives the original's (literal) losses and gradients."""
from __future__ import annotations

import copy

import pytest
import torch

from scripts.checkpoint import build_networks
from scripts.seeding import seed_everything
from scripts.training import GANTrainer, adversarial_loss


def _trainers(**optimised):
    seed_everything(0)
    nets = build_networks(8, with_discriminator=True)
    return GANTrainer(copy.deepcopy(nets), literal=True), GANTrainer(nets, literal=False, **optimised)


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 32, 32, generator=g)
    y = (torch.rand(2, 3, 32, 32, generator=g) > 0.8).float()
    return x, y


def test_forward_reuse_matches_literal_over_steps():
    literal, reuse = _trainers()
    for step in range(2):
        x, y = _batch(step)
        a, b = literal.step(x, y), reuse.step(x, y)
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), (step, k)
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
            assert a[k] == pytest.approx(b[k], rel=5e-3), (step, k)


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
            assert b[k] == pytest.approx(a[k], rel=0.05), (step, k)


def test_fp16_with_gradient_scaler_runs_and_tracks_fp32():
    fp32, _ = _trainers()
    _, half = _trainers(amp_dtype=torch.float16)
    assert half.scaler.is_enabled()
    x, y = _batch()
    a, b = fp32.step(x, y), half.step(x, y)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=0.05), k
    assert "scale" in half.state_dict()["scaler"]


def test_double_sigmoid_option_reproduces_the_original_bounded_loss():
    logits = torch.tensor([-20.0, 20.0])
    loss = adversarial_loss(logits, True, double_sigmoid=True)
    # sigmoid -> (0, 1), then BCE-with-logits against 1: mean of softplus(-0) and softplus(-1)
    expected = (torch.nn.functional.softplus(torch.tensor(0.0)) + torch.nn.functional.softplus(torch.tensor(-1.0))) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert adversarial_loss(logits, True).item() > 9  # without it, a confident wrong D costs ~20
