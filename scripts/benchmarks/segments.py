"""Seconds per image of segment-level evaluation, on one core."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from scripts.benchmarks.steps import cpu_description


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
    lines = [
        f"segment evaluation, {dataset}/{split}, one core of {cpu_description()}",
        f"{'image':<16}{'size':>12}{'segments':>10}{'read label s':>14}{'graph s':>9}{'score s':>9}",
    ]
    lines += [f"{r[0]:<16}{f'{r[1]}x{r[2]}':>12}{r[3]:>10}{r[4]:>14.2f}{r[5]:>9.2f}{r[6]:>9.3f}" for r in rows]
    total = [sum(r[k] for r in rows) for k in (4, 5, 6)]
    lines.append(f"{f'total ({len(rows)} images)':<38}{total[0]:>14.2f}{total[1]:>9.2f}{total[2]:>9.3f}")
    lines.append(f"graph + scoring: {total[1] + total[2]:.1f} s; with label decoding: {sum(total):.1f} s")
    return "\n".join(lines)
