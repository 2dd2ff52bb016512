"""Training curves read back from a run's TensorBoard events and drawn with matplotlib.

The training loop writes ``loss/<name>`` and ``lr/<name>`` every ``--log-every`` steps and
``val_<class>/<metric>`` at every validation (``scripts/training/loop.py``); this module reads them
with TensorBoard's own event reader, so the page shows what TensorBoard would.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

Scalars = dict[str, list[tuple[int, float]]]  # tag -> (step, value), in step order


def read_scalars(run_dir: Path) -> Scalars:
    """Every scalar series in the event files of ``run_dir`` (empty when there are none).

    A resumed run appends a new event file; a step written twice keeps its last value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            series.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    return {tag: sorted(points.items()) for tag, points in sorted(series.items())}


PLOTS = (  # (title, x label, tag prefix, log scale)
    ("Losses (interval means)", "step", "loss/", False),
    ("Learning rates", "step", "lr/", True),
    ("Validation F1", "epoch", "val_", False),
)


def curves_png(scalars: Scalars) -> bytes | None:
    """One PNG with a plot per group of :data:`PLOTS` that has data (validation: the F1 of each
    class and their average); None when there is nothing to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = []
    for title, xlabel, prefix, log in PLOTS:
        tags = [t for t in scalars if t.startswith(prefix) and (prefix != "val_" or t.endswith("/f1"))]
        if tags:
            groups.append((title, xlabel, tags, log))
    if not groups:
        return None
    fig = Figure(figsize=(5.2 * len(groups), 3.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (title, xlabel, tags, log) in zip(fig.subplots(1, len(groups), squeeze=False)[0], groups):
        for tag in tags:
            steps, values = zip(*scalars[tag])
            ax.plot(
                steps,
                values,
                marker="o" if len(steps) < 30 else None,
                markersize=3,
                label=tag.split("/")[0].removeprefix("val_") if tag.startswith("val_") else tag.split("/", 1)[1],
            )
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG inlined into the page (the page stays one file that needs no server)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
