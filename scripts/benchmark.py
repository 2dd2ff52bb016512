"""Speed and memory of a training step and of inference, per step mode.

    python -m scripts.benchmark --sizes 128 256 512 --modes literal reuse batched --json bench.json
    python -m scripts.benchmark --segments HRF-AV --data-root data --limit 21   # segment evaluation, one core
    python -m scripts.benchmark --nproc 2 --sizes 128 --device cuda   # DDP: plain vs 1 and N processes
    python -m scripts.benchmark --matrix OUT --device cuda --sizes 592 --budget-s 270   # GPU variant matrix
    python -m scripts.benchmark --report OUT                          # its tables again

Modes (all exact but ``amp``; see scripts/training/step.py):
``literal`` the original's calls (every forward recomputed, D nine times; plain Adam, contiguous);
``reuse`` one forward per generator, no unused D weight gradients, fused Adam;
``batched`` ``reuse`` plus D's calls batched (2B per D update, 3B for the three generator updates);
``amp`` ``batched`` under bf16 autocast; ``compile`` ``batched`` with torch.compile'd networks
(compilation happens in the warm-up steps); ``auto`` the mode ``--step auto`` of train.py chooses
(the table names it). ``--channels-last auto`` uses NHWC on CUDA only. ``--matrix``: the GPU variant
matrix with CUDA-graph replay, kernel profiles and ceilings (``scripts/training/variants.py``).
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

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.io.atomic import write_atomic
from scripts.core.runtime import cpu_flags, positive_float, positive_int

MODES = ("literal", "reuse", "batched", "amp", "compile", "auto")


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
    return {"mode": mode if mode != "auto" else f"auto={step_mode}", "size": size, "n_filters": n_filters, "batch": batch, "device": device_name,
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
    head = (f"{'mode':<13}{'size':>6}{'ms/step':>10}{'img/s':>8}{'literal/this':>13}{'infer ms/img':>13}"
            f"{'peak MB':>9}{'GFLOP/step':>11}{'GFLOP/s':>9}{'ops/step':>9}{'syncs':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['mode']:<13}{r['size']:>6}  failed: {r['error']}")
            continue
        ratio = literal.get(r["size"], float("nan")) / r["ms_per_step"]
        lines.append(f"{r['mode']:<13}{r['size']:>6}{r['ms_per_step']:>10.0f}{r['train_images_per_s']:>8.2f}"
                     f"{ratio:>13.2f}{r['ms_per_image_inference']:>13.0f}{r['peak_mb']:>9.0f}"
                     f"{r['gflop_per_step']:>11.1f}{r['achieved_gflop_s']:>9.1f}{r['aten_ops_per_step']:>9}"
                     f"{'-' if r.get('host_syncs_per_step') is None else r['host_syncs_per_step']:>6}")
    return "\n".join(lines)


def _ddp_rank(rank: int, world: int, port: int, size: int, n_filters: int, batch: int, device_name: str, reps: int,
              warmup: int, use_ddp: bool, out: dict) -> None:
    """One process of the DDP benchmark: ``batch`` is the global batch, split over the ranks."""
    import torch.distributed as dist

    from model import build_networks
    from scripts.training import GANTrainer
    from scripts.core.distributed import Context

    device = torch.device(device_name if device_name == "cpu" else f"cuda:{rank}")
    if use_ddp:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                                rank=rank, world_size=world)
    try:
        if device.type == "cpu":
            torch.set_num_threads(max(1, (torch.get_num_threads() or 1) // world))
        torch.manual_seed(0)
        nets = {k: v.to(device) for k, v in build_networks(n_filters, with_discriminator=True).items()}
        trainer = GANTrainer(nets, mode="batched", fused_adam=True, channels_last=device.type == "cuda")
        if use_ddp:
            trainer.distribute(Context(rank, world), device_ids=[device.index] if device.type == "cuda" else None,
                               sync_bn=world > 1)
        per = batch // world
        x = torch.randn(per, 3, size, size, device=device)
        y = (torch.rand(per, 3, size, size, device=device) > 0.8).float()
        times = []
        for i in range(warmup + reps):
            _sync(device)
            t = time.perf_counter()
            trainer.step(x, y)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t)
        if rank == 0:
            out["ms"] = 1000 * statistics.median(times)
    finally:
        if use_ddp:
            dist.destroy_process_group()


def ddp_benchmark(nproc: int, size: int, n_filters: int, batch: int, device_name: str, reps: int, warmup: int) -> str:
    """Training images/s: one plain process, DDP with one process, DDP with ``nproc`` (global batch fixed)."""
    import socket

    import torch.multiprocessing as mp

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    rows = []
    runs = [("plain, 1 process", 1, False), ("DDP, 1 process", 1, True)]
    runs += [(f"DDP, {nproc} processes", nproc, True)] if nproc > 1 else []
    for label, world, use_ddp in runs:
        if batch % world:
            rows.append((label, None))
            continue
        with mp.Manager() as manager:
            out = manager.dict()
            mp.spawn(_ddp_rank, args=(world, port(), size, n_filters, batch, device_name, reps, warmup, use_ddp, out),
                     nprocs=world, join=True)
            rows.append((label, out["ms"]))
    plain = rows[0][1]
    lines = [f"DDP training step, global batch {batch}, {size} px, n={n_filters}, {device_name} "
             f"({cpu_description() if device_name == 'cpu' else torch.cuda.get_device_name()})",
             f"{'run':<22}{'ms/step':>10}{'images/s':>10}{'vs plain':>10}"]
    for label, ms in rows:
        lines.append(f"{label:<22}" + ("  batch does not split" if ms is None else
                                        f"{ms:>10.0f}{1000 * batch / ms:>10.2f}{plain / ms:>10.3f}"))
    if device_name == "cpu":
        lines.append("(CPU processes share this machine's cores: these rows show that DDP runs, not how it scales)")
    return "\n".join(lines)


def segments_benchmark(dataset: str, data_root: Path, split: str, limit: int | None) -> str:
    """Seconds per image of segment-level evaluation on one core: label decoding, the ground-truth
    graph (built once per image) and scoring one prediction (the ground truth with the class of
    half of every segment flipped)."""
    import os
    import warnings

    import cv2
    import numpy as np

    from scripts.core.config import dataset_info
    from scripts.data.dataset import find_items
    from scripts.data.images import load_label
    from scripts.data.labels import decode_classes
    from scripts.vessels.graph import build_graph
    from scripts.vessels.segments import segment_counts

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    items = find_items(Path(data_root) / dataset / split, dataset_info(dataset).label_suffixes)[:limit]
    rows = []
    for item in items:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            label = load_label(item.label)[0].transpose(2, 0, 1)
        t1 = time.perf_counter()
        graph = build_graph(label)
        t2 = time.perf_counter()
        pred = decode_classes(torch.from_numpy(label)).numpy()
        half = graph.pixels[np.r_[np.diff(graph.segment) != 0, True].cumsum() % 2 == 0]  # stand-in prediction
        a, v = pred[0].ravel(), pred[1].ravel()
        a[half], v[half] = v[half].copy(), a[half].copy()
        t3 = time.perf_counter()
        segment_counts(graph, pred)
        t4 = time.perf_counter()
        rows.append((item.id, label.shape[2], label.shape[1], graph.n_segments, t1 - t0, t2 - t1, t4 - t3))
    lines = [f"segment evaluation, {dataset}/{split}, one core of {cpu_description()}",
             f"{'image':<16}{'size':>12}{'segments':>10}{'read label s':>14}{'graph s':>9}{'score s':>9}"]
    lines += [f"{r[0]:<16}{f'{r[1]}x{r[2]}':>12}{r[3]:>10}{r[4]:>14.2f}{r[5]:>9.2f}{r[6]:>9.3f}" for r in rows]
    total = [sum(r[k] for r in rows) for k in (4, 5, 6)]
    lines.append(f"{f'total ({len(rows)} images)':<38}{total[0]:>14.2f}{total[1]:>9.2f}{total[2]:>9.3f}")
    lines.append(f"graph + scoring: {total[1] + total[2]:.1f} s; with label decoding: {sum(total):.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--segments", metavar="DATASET", default=None,
                   help="time segment-level evaluation on DATASET's labels instead of the networks")
    p.add_argument("--data-root", type=Path, default=None, help="with --segments (default: $AVSEG_DATA or ./data)")
    p.add_argument("--split", default="training", help="with --segments")
    p.add_argument("--limit", type=positive_int, default=None, help="with --segments: the first N images")
    p.add_argument("--nproc", type=positive_int, default=None, metavar="N",
                   help="DDP throughput instead: plain vs DDP with 1 and N processes (first --sizes entry)")
    p.add_argument("--matrix", type=Path, default=None, metavar="OUT",
                   help="the GPU variant matrix (first --sizes entry) into OUT/matrix.json, tables printed last")
    p.add_argument("--budget-s", type=positive_float, default=270, help="with --matrix: seconds it may take")
    p.add_argument("--report", type=Path, default=None, metavar="OUT", help="print the tables of OUT/matrix.json")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[128, 256])
    p.add_argument("--modes", nargs="+", choices=MODES, default=["literal", "reuse", "batched"])
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto", help="NHWC memory format")
    p.add_argument("--n-filters", type=positive_int, default=32)
    p.add_argument("--batch-size", type=positive_int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=positive_int, default=5)
    p.add_argument("--warmup", type=positive_int, default=2, help="untimed steps first (at least 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if a.report:
        from scripts.training.variants import report

        print(report(a.report))
        return 0
    if a.matrix:
        from scripts.training.variants import Matrix, report

        Matrix(torch.device(a.device), a.sizes[0], a.n_filters, a.matrix, a.budget_s,
               say=lambda text: print(text, flush=True)).run()
        print(report(a.matrix))
        return 0
    if a.nproc:
        if a.device.startswith("cuda") and torch.cuda.device_count() < a.nproc:
            print(f"error: --nproc {a.nproc} needs {a.nproc} GPUs, {torch.cuda.device_count()} visible", file=sys.stderr)
            return 2
        print(ddp_benchmark(a.nproc, a.sizes[0], a.n_filters, a.batch_size, a.device, a.reps, max(1, a.warmup)))
        return 0
    if a.segments:
        from scripts.core.config import default_data_root

        print(segments_benchmark(a.segments, a.data_root or default_data_root(), a.split, a.limit))
        return 0
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
