"""Build ``v2023_step_reference.pt``: three training steps of the authors' 2023 code, recorded.

The fidelity target of ``--variant v2023 --step literal`` (docs/training_v2023.md). This script runs
the authors' own ``train_net`` (``train.py`` of their repository at f7de674) unmodified on the CPU; it
only replaces what feeds it and what it writes: the dataset and loaders (one fixed batch, given three
times), the validation (``eval_net`` returns zeros, so no checkpoint is written) and TensorBoard (a
recorder that keeps the six losses of every step). The four networks are their classes
(``scripts/model.py``: n = 32, four classes, nearest upsampling, as their ``__main__`` builds them)
with SPEC section 8's weight rule and seeds. After each step the state of every network (weights and
BatchNorm buffers) is recorded per tensor: a SHA-256 of its float32 bytes (bit identity) and its sum,
absolute sum and absolute maximum in float64 (the size of a difference). The run is made with one
thread; a second run with two threads measures the 2023 code's own run-to-run noise (another thread
count, like another CPU, sums in another order), recorded per step as the largest relative difference
of the losses and of each network's per-tensor sums. Nothing of this project is imported: the file
runs where the authors' code runs.

    python tests/data/build_v2023_step_reference.py AUTHORS_REPO [OUT]

AUTHORS_REPO: a checkout of https://github.com/rmaphoh/Learning_AVSegmentation at f7de674 (their
code needs torch, torchvision, scikit-learn, scikit-image, scipy, Pillow, tqdm and TensorBoard).
OUT defaults to ``v2023_step_reference.pt`` beside this file.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

SEEDS = {"branch_a": 0, "branch_v": 10000, "main": 20000, "discriminator": 30000}  # SPEC section 8
STEPS, BATCH, SIZE = 3, 2, 64
ALPHA, BETA, GAMMA, LR = 0.5, 1.1, 0.08, 8e-4  # the README's command


def rule_weights(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """SPEC section 8's weight rule for the i-th key of a state dict with base seed ``seed``."""
    out = {}
    for i, (key, value) in enumerate(state.items()):
        g = torch.Generator().manual_seed(seed + i)
        shape = tuple(value.shape)
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


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The images (B, 3, H, W) and index labels (B, H, W): 80 % background, the rest classes 1-3."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, SIZE, SIZE, generator=g)
    u = torch.rand(BATCH, SIZE, SIZE, generator=g)
    label = torch.where(u < 0.8, 0, 1 + ((u - 0.8) / 0.2 * 3).floor().clamp(max=2)).long()
    return x, label


def summary(net: torch.nn.Module) -> dict[str, dict]:
    """Per state tensor: SHA-256 of its float32 bytes, and its sum, absolute sum and maximum (float64)."""
    out = {}
    for key, t in net.state_dict().items():
        f = t.detach().float().contiguous()
        d = t.detach().double()
        out[key] = {
            "sha256": hashlib.sha256(f.numpy().tobytes()).hexdigest(),
            "sum": float(d.sum()),
            "abs_sum": float(d.abs().sum()),
            "abs_max": float(d.abs().max()),
        }
    return out


def run(model: types.ModuleType, train: types.ModuleType, threads: int) -> tuple[dict, list, list]:
    """Three steps of ``train.train_net`` with ``threads`` CPU threads: (keys, states, losses)."""
    torch.set_num_threads(threads)
    nets = {
        "main": model.Generator_main(input_channels=3, n_filters=32, n_classes=4, bilinear=False),
        "discriminator": model.Discriminator(input_channels=7, n_filters=32, n_classes=4, bilinear=False),
        "branch_a": model.Generator_branch(input_channels=3, n_filters=32, n_classes=4, bilinear=False),
        "branch_v": model.Generator_branch(input_channels=3, n_filters=32, n_classes=4, bilinear=False),
    }
    keys = {}
    for name, net in nets.items():
        net.load_state_dict(rule_weights(net.state_dict(), SEEDS[name]))
        keys[name] = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    x, label = batch()
    states: list[dict] = []
    losses: list[dict[str, list[float]]] = [{} for _ in range(STEPS)]

    def loader(data, batch_size=1, shuffle=False, **kwargs):
        if batch_size == 1:  # the validation loader: eval_net is replaced below
            return []

        def batches():
            for _ in range(STEPS):
                yield {"image": x.clone(), "label": label.clone()}
                states.append({name: summary(net) for name, net in nets.items()})

        return batches()

    class Recorder:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def add_scalar(self, tag, value, step) -> None:
            if step < STEPS:
                losses[step].setdefault(tag, []).append(float(value))

        def close(self) -> None:
            pass

    train.args = types.SimpleNamespace(dataset="FIXTURE", jn="fixture", dis="unet", seed=42)
    train.LearningAVSegData = lambda *args, **kwargs: list(range(STEPS * BATCH))  # n_val = 0 of 6
    train.DataLoader = loader
    train.SummaryWriter = Recorder
    train.eval_net = lambda *args, **kwargs: (0.0,) * 9
    train.train_net(
        net_G=nets["main"],
        net_D=nets["discriminator"],
        net_G_A=nets["branch_a"],
        net_G_V=nets["branch_v"],
        device=torch.device("cpu"),
        epochs=1,
        batch_size=BATCH,
        alpha_hyper=ALPHA,
        beta_hyper=BETA,
        gama_hyper=GAMMA,
        lr=LR,
        val_percent=0.1,
        image_size=(SIZE, SIZE),
    )
    assert len(states) == STEPS, f"expected {STEPS} recorded steps, got {len(states)}"
    return keys, states, losses


def noise(states: list[dict], losses: list[dict], other_states: list[dict], other_losses: list[dict]) -> list[dict]:
    """Per step: the largest relative difference of the losses, and per network of the per-tensor sums
    (relative to the tensor's absolute sum), between two runs."""
    out = []
    for s, (a, b) in enumerate(zip(states, other_states)):
        loss_diff = max(abs(u - v) / abs(u) for tag in losses[s] for u, v in zip(losses[s][tag], other_losses[s][tag]))
        nets = {
            net: max(abs(r["sum"] - b[net][k]["sum"]) / max(r["abs_sum"], 1e-30) for k, r in a[net].items())
            for net in a
        }
        out.append({"losses": loss_diff, "nets": nets})
    return out


def cpu() -> dict[str, object]:
    """The CPU's model name and feature flags (Linux): kernels, and so the bits, may differ on another."""
    info: dict[str, object] = {"model": "unknown", "flags": []}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and info["model"] == "unknown":
                info["model"] = value.strip()
            if key.strip() == "flags" and not info["flags"]:
                info["flags"] = sorted(value.split())
    except OSError:
        pass
    return info


def main(repo: Path, out: Path) -> None:
    sys.path.insert(0, str(repo))
    os.chdir(tempfile.mkdtemp())  # train_net makes ./<dataset>/<job>/Discriminator_<d>/ and ./runs
    model = importlib.import_module("scripts.model")
    train = importlib.import_module("train")
    keys, states, losses = run(model, train, threads=1)
    _, states_2, losses_2 = run(model, train, threads=2)
    x, label = batch()
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    torch.save(
        {
            "source": f"authors' train.py at {commit or 'unknown commit'}, CPU, 1 thread",
            "torch": str(torch.__version__),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu": cpu(),
            "seeds": SEEDS,
            "keys": keys,
            "hyper": {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA, "lr": LR},
            "x": x,
            "label": label,
            "losses": losses,
            "states": states,
            "noise": noise(states, losses, states_2, losses_2),
        },
        out,
    )
    print(f"wrote {out}: {STEPS} steps of the 2023 code on a ({BATCH}, 3, {SIZE}, {SIZE}) batch")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(
        Path(sys.argv[1]).resolve(),
        Path(sys.argv[2] if len(sys.argv) == 3 else Path(__file__).with_name("v2023_step_reference.pt")),
    )
