"""The training step: forward reuse gives the original's (literal) losses and gradients."""
from __future__ import annotations

import copy

import pytest
import torch

from scripts.checkpoint import build_networks
from scripts.seeding import seed_everything
from scripts.training import GANTrainer, adversarial_loss


def _trainers():
    seed_everything(0)
    nets = build_networks(8, with_discriminator=True)
    return GANTrainer(copy.deepcopy(nets), literal=True), GANTrainer(nets, literal=False)


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 32, 32, generator=g)
    y = (torch.rand(2, 3, 32, 32, generator=g) > 0.8).float()
    return x, y


def test_forward_reuse_matches_literal_steps():
    literal, reuse = _trainers()
    for step in range(2):
        x, y = _batch(step)
        a, b = literal.step(x, y), reuse.step(x, y)
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), (step, k)
    for name in reuse.nets:
        for (pn, p1), (_, p2) in zip(literal.nets[name].named_parameters(), reuse.nets[name].named_parameters()):
            assert torch.allclose(p1, p2, rtol=1e-4, atol=1e-6), (name, pn)


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
