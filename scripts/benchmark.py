"""Speed and memory of a training step and of inference, per step mode.

    python -m scripts.benchmark --sizes 128 256 512 --modes literal reuse batched --json bench.json

Modes (all exact but ``amp``; see scripts/training/step.py):
``literal`` the original's calls (every forward recomputed, D nine times; plain Adam, contiguous);
``reuse`` one forward per generator, no unused D weight gradients, fused Adam;
``batched`` ``reuse`` plus D's calls batched (2B per D update, 3B for the three generator updates);
``amp`` ``batched`` under bf16 autocast; ``compile`` ``batched`` with torch.compile'd networks
(compilation happens in the warm-up steps). ``--channels-last auto`` uses NHWC on CUDA only.
Every (mode, size) runs in a fresh process so its peak memory is its own (RSS on CPU, max
allocated on CUDA). Times are medians after warm-up. FLOPs and the number of ATen operator calls
(about one kernel launch each on a GPU) are counted during the first warm-up step.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from scripts.report import write_atomic
from scripts.runtime import cpu_flags

MODES = ("literal", "reuse", "batched", "amp", "compile")


def cpu_description() -> str:
    """CPU model and the SIMD flags that decide CPU speed (bf16 units, AVX-512, AMX)."""
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in cpu_flags()]
    return f"{model}; flags: {' '.join(shown) or 'unknown'}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _measure(mode: str, size: int, n_filters: int, batch: int, device_name: str, reps: int, warmup: int,
             threads: int | None, channels_last: str = "auto") -> dict:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class OpCounter(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            OpCounter.calls += 1
            return func(*args, **(kwargs or {}))

    from scripts.checkpoint import build_networks
    from scripts.inference import predict_probs
    from scripts.training import GANTrainer

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    torch.manual_seed(0)
    nets = {k: v.to(device) for k, v in build_networks(n_filters, with_discriminator=True).items()}
    nhwc = channels_last == "on" or (channels_last == "auto" and device.type == "cuda" and mode != "literal")
    step_mode = {"literal": "literal", "reuse": "reuse"}.get(mode, "batched")
    trainer = GANTrainer(nets, mode=step_mode, amp_dtype=torch.bfloat16 if mode == "amp" else None,
                         channels_last=nhwc, fused_adam=mode != "literal")
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.rand(batch, 3, size, size, device=device) > 0.9).float()
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
        _sync(device)
        t = time.perf_counter()
        trainer.step(x, y)
        _sync(device)
        times.append(time.perf_counter() - t)
    step = statistics.median(times)
    infer = []
    x1 = x[:1].contiguous(memory_format=trainer.memory_format)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "amp"):
        predict_probs(nets, x1)
        for _ in range(reps):
            _sync(device)
            t = time.perf_counter()
            predict_probs(nets, x1)
            _sync(device)
            infer.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"mode": mode, "size": size, "n_filters": n_filters, "batch": batch, "device": device_name,
            "ms_per_step": 1000 * step, "train_images_per_s": batch / step, "ms_per_image_inference": 1000 * statistics.median(infer),
            "peak_mb": peak, "peak_kind": "cuda max allocated" if device.type == "cuda" else "process RSS",
            "gflop_per_step": flops / 1e9, "achieved_gflop_s": flops / 1e9 / step, "aten_ops_per_step": ops,
            "channels_last": nhwc, "host_syncs_per_step": syncs}


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
    head = (f"{'mode':<10}{'size':>6}{'ms/step':>10}{'img/s':>8}{'literal/this':>13}{'infer ms/img':>13}"
            f"{'peak MB':>9}{'GFLOP/step':>11}{'GFLOP/s':>9}{'ops/step':>9}{'syncs':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['mode']:<10}{r['size']:>6}  failed: {r['error']}")
            continue
        ratio = literal.get(r["size"], float("nan")) / r["ms_per_step"]
        lines.append(f"{r['mode']:<10}{r['size']:>6}{r['ms_per_step']:>10.0f}{r['train_images_per_s']:>8.2f}"
                     f"{ratio:>13.2f}{r['ms_per_image_inference']:>13.0f}{r['peak_mb']:>9.0f}"
                     f"{r['gflop_per_step']:>11.1f}{r['achieved_gflop_s']:>9.1f}{r['aten_ops_per_step']:>9}"
                     f"{'-' if r.get('host_syncs_per_step') is None else r['host_syncs_per_step']:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--modes", nargs="+", choices=MODES, default=["literal", "reuse", "batched"])
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto", help="NHWC memory format")
    p.add_argument("--n-filters", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {a.device} asked for, but no CUDA GPU is visible", file=sys.stderr)
        return 2
    device = (torch.cuda.get_device_name() if a.device.startswith("cuda")
              else f"{cpu_description()}; {a.threads or torch.get_num_threads()} threads")
    rows = []
    for size in a.sizes:
        for mode in a.modes:
            rows.append(measure(mode=mode, size=size, n_filters=a.n_filters, batch=a.batch_size, device_name=a.device,
                                reps=a.reps, warmup=a.warmup, threads=a.threads, channels_last=a.channels_last))
            print(f"  {mode} {size}: {rows[-1].get('ms_per_step', float('nan')):.0f} ms/step", file=sys.stderr)
            if a.json:  # after every row: a run cut short keeps what it measured
                write_atomic(a.json, json.dumps({"device": device, "torch": str(torch.__version__), "rows": rows},
                                                indent=1) + "\n")
    print(f"training step (batch {a.batch_size}, n={a.n_filters}) and inference on {a.device} ({device}), torch {torch.__version__}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
