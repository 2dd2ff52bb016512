"""Speed and memory of a training step and of inference, per step mode, each in a fresh process."""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from scripts.core.runtime import cpu_flags
from scripts.io.atomic import write_atomic

MODES = ("literal", "reuse", "batched", "amp", "compile", "auto")


def cpu_description() -> str:
    """CPU model and the SIMD flags that decide CPU speed (bf16 units, AVX-512, AMX)."""
    model = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in cpu_flags()]
    return f"{model}; flags: {' '.join(shown) or 'unknown'}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _measure(
    mode: str,
    size: int,
    n_filters: int,
    batch: int,
    device_name: str,
    reps: int,
    warmup: int,
    threads: int | None,
    channels_last: str = "auto",
    checkpointing: bool = False,
    height: int | None = None,
) -> dict:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class OpCounter(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            OpCounter.calls += 1
            return func(*args, **(kwargs or {}))

    from model import build_networks
    from scripts.inference.predictor import predict_probs
    from scripts.training import GANTrainer, auto_step_mode

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    torch.manual_seed(0)
    nets = {k: v.to(device) for k, v in build_networks(n_filters, with_discriminator=True).items()}
    nhwc = channels_last == "on" or (channels_last == "auto" and device.type == "cuda" and mode != "literal")
    step_mode = {"literal": "literal", "reuse": "reuse", "auto": auto_step_mode(device, n_filters)}.get(mode, "batched")
    trainer = GANTrainer(
        nets,
        mode=step_mode,
        amp_dtype=torch.bfloat16 if mode == "amp" else None,
        channels_last=nhwc,
        fused_adam=mode != "literal",
        checkpointing=checkpointing,
    )
    h = height or size  # size is the width
    x = torch.randn(batch, 3, h, size, device=device)
    y = (torch.rand(batch, 3, h, size, device=device) > 0.9).float()
    with FlopCounterMode(display=False) as counter, OpCounter():  # the first warm-up step also counts
        trainer.step(x, y)
    flops, ops = counter.get_total_flops(), OpCounter.calls
    if mode == "compile":
        trainer.compile("default")
    for _ in range(max(warmup - 1, 2 if mode == "compile" else 0)):  # compiling happens in these
        trainer.step(x, y)
    syncs = None
    if device.type == "cuda":  # count the step's host synchronisations (the batched step should have none)
        import warnings

        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.step(x, y)
        torch.cuda.set_sync_debug_mode(0)
        syncs = sum("synchroniz" in str(w.message) for w in caught)
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        synchronize(device)
        t = time.perf_counter()
        trainer.step(x, y)
        synchronize(device)
        times.append(time.perf_counter() - t)
    step = statistics.median(times)
    infer = []
    x1 = x[:1].contiguous(memory_format=trainer.memory_format)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "amp"):
        predict_probs(nets, x1)
        for _ in range(reps):
            synchronize(device)
            t = time.perf_counter()
            predict_probs(nets, x1)
            synchronize(device)
            infer.append(time.perf_counter() - t)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "mode": (mode if mode != "auto" else f"auto={step_mode}") + (" + ckpt" if checkpointing else ""),
        "checkpointing": checkpointing,
        "size": size,
        "n_filters": n_filters,
        "batch": batch,
        "device": device_name,
        "ms_per_step": 1000 * step,
        "train_images_per_s": batch / step,
        "ms_per_image_inference": 1000 * statistics.median(infer),
        "peak_mb": peak,
        "peak_kind": "cuda max allocated" if device.type == "cuda" else "process RSS",
        "gflop_per_step": flops / 1e9,
        "achieved_gflop_s": flops / 1e9 / step,
        "aten_ops_per_step": ops,
        "channels_last": nhwc,
        "host_syncs_per_step": syncs,
    }


def _worker(queue, kwargs):
    try:
        queue.put(_measure(**kwargs))
    except Exception as err:  # report, do not hang the parent
        queue.put({"error": f"{type(err).__name__}: {err}", **{k: kwargs[k] for k in ("mode", "size")}})


def measure(**kwargs) -> dict:
    """Run one configuration in a fresh (spawned) process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(queue, kwargs))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def table(rows: list[dict]) -> str:
    literal = {r["size"]: r["ms_per_step"] for r in rows if r.get("mode") == "literal" and "error" not in r}
    head = (
        f"{'mode':<17}{'size':>6}{'ms/step':>10}{'img/s':>8}{'literal/this':>13}{'infer ms/img':>13}"
        f"{'peak MB':>9}{'GFLOP/step':>11}{'GFLOP/s':>9}{'ops/step':>9}{'syncs':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['mode']:<17}{r['size']:>6}  failed: {r['error']}")
            continue
        ratio = literal.get(r["size"], float("nan")) / r["ms_per_step"]
        lines.append(
            f"{r['mode']:<17}{r['size']:>6}{r['ms_per_step']:>10.0f}{r['train_images_per_s']:>8.2f}"
            f"{ratio:>13.2f}{r['ms_per_image_inference']:>13.0f}{r['peak_mb']:>9.0f}"
            f"{r['gflop_per_step']:>11.1f}{r['achieved_gflop_s']:>9.1f}{r['aten_ops_per_step']:>9}"
            f"{'-' if r.get('host_syncs_per_step') is None else r['host_syncs_per_step']:>6}"
        )
    return "\n".join(lines)


def benchmark_steps(
    sizes: list[int],
    modes: list[str],
    json_path: Path | None = None,
    checkpointing: list[bool] | None = None,
    **settings,
) -> tuple[list[dict], str]:
    """:func:`measure` for every size and mode (progress on stderr); with ``json_path`` the rows so far
    are written after each, so a run cut short keeps what it measured. Returns the rows and the device."""
    device_name = settings["device_name"]
    device = (
        torch.cuda.get_device_name()
        if device_name.startswith("cuda")
        else f"{cpu_description()}; {settings.get('threads') or torch.get_num_threads()} threads"
    )
    rows: list[dict] = []
    for size in sizes:
        for mode in modes:
            for ckpt in checkpointing or [False]:
                rows.append(measure(mode=mode, size=size, checkpointing=ckpt, **settings))
                label = f"{mode}{' + checkpointing' if ckpt else ''} {size}"
                print(f"  {label}: {rows[-1].get('ms_per_step', float('nan')):.0f} ms/step", file=sys.stderr)
            if json_path:
                write_atomic(
                    json_path,
                    json.dumps({"device": device, "torch": str(torch.__version__), "rows": rows}, indent=1) + "\n",
                )
    return rows, device
