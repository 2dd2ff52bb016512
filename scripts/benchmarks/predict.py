"""Throughput of ``predict.py``: the sequential pipeline against the overlapped one, per stage.

Each pipeline (decode and finish workers) runs in a fresh process on the same photographs (a folder's
photographs, cycled by symbolic link up to ``photos``), into a cohort folder of its own, so that its
peak memory (resident set of the process and its workers) is its own. The stages' seconds are summed
over photographs (``scripts/inference/pipeline.py``: StageTimes); in the sequential pipeline their sum
is the run, and the largest of them is the shortest any overlapped pipeline could take.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from scripts.benchmarks.steps import cpu_description
from scripts.core.errors import UsageError
from scripts.data.images import collect_inputs
from scripts.inference.batch import PredictOptions, predict_folder
from scripts.inference.pipeline import Workers
from scripts.inference.weights import load_predictor

STAGES = ("decode", "infer", "write", "measure")


def cohort_of(folder: Path, photos: int, into: Path) -> list[Path]:
    """``photos`` links named ``0000_<name>`` ... cycling through the photographs of ``folder``."""
    files = collect_inputs([str(folder)])
    into.mkdir(parents=True)
    links = []
    for i in range(photos):
        source = files[i % len(files)].resolve()
        link = into / f"{i:06d}_{source.name}"
        link.symlink_to(source)
        links.append(link)
    return links


def _run(args: tuple) -> dict:
    """One pipeline in this (fresh) process; its numbers."""
    files, checkpoint, workers, batch_size, device_name, out, threads = args
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    predictor = load_predictor(device, checkpoint, None, None, None, None)
    options = PredictOptions(out, batch_size=batch_size, workers=workers, progress_every=1e9)
    started = time.perf_counter()
    outcome = predict_folder(options, files, predictor, {}, device, out)
    wall = time.perf_counter() - started
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    t = outcome.times
    return {
        "workers": workers,
        "photos": outcome.tables.done + len(outcome.tables.failed),
        "wall": wall,
        **{s: getattr(t, s) for s in STAGES},
        "waiting": t.waiting,
        "peak_mb": peak_kb / 1024,  # the largest single process: this one or a worker
        "threads": torch.get_num_threads(),
    }


def predict_benchmark(
    folder: Path,
    checkpoint: Path,
    pipelines: list[Workers],
    photos: int,
    batch_size: int,
    device: str,
    threads: int | None = None,
) -> str:
    """The table of every pipeline on ``photos`` photographs of ``folder``."""
    if checkpoint is None:
        raise UsageError("--predict needs --checkpoint: the model whose predictions are timed")
    context = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory(prefix="avseg-bench-") as tmp:
        files = cohort_of(folder, photos, Path(tmp) / "photos")
        for i, workers in enumerate(pipelines):
            # a fresh process per pipeline (its workers may have workers: not a daemonic Pool)
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                job = (files, checkpoint, workers, batch_size, device, Path(tmp) / f"out{i}", threads)
                rows.append(pool.submit(_run, job).result())
    return format_table(rows, folder, checkpoint, batch_size, device)


def format_table(rows: list[dict], folder: Path, checkpoint: Path, batch_size: int, device: str) -> str:
    sequential = next((r for r in rows if r["workers"] == Workers()), None)
    lines = [
        f"predict.py on {rows[0]['photos']} photographs of {folder} (batch {batch_size}, {checkpoint}), "
        f"{device}: {cpu_description()}; torch {torch.__version__}, {rows[0]['threads']} thread(s) for the networks",
        "| pipeline (decode + finish workers) | photos/s | s/photo | "
        + " | ".join(f"{s} s" for s in STAGES)
        + " | waiting s | run / slowest stage alone | peak MB |",
        "|---|---|---|" + "---|" * len(STAGES) + "---|---|---|",
    ]
    slowest = max(sequential[s] for s in STAGES) if sequential else None
    for r in rows:
        name = "sequential" if r["workers"] == Workers() else f"{r['workers'].decode} + {r['workers'].finish}"
        ratio = f"{r['wall'] / slowest:.2f}" if slowest else "n/a"
        lines.append(
            f"| {name} | {r['photos'] / r['wall']:.2f} | {r['wall'] / r['photos']:.3f} | "
            + " | ".join(f"{r[s]:.1f}" for s in STAGES)
            + f" | {r['waiting']:.1f} | {ratio} | {r['peak_mb']:.0f} |"
        )
    if slowest:
        lines.append(
            f"slowest stage alone (sequential run): {slowest:.1f} s; a stage's seconds are summed over photographs "
            "(in parallel pipelines they overlap)"
        )
    return "\n".join(lines)
