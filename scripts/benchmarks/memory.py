"""The memory plan as a table: planned peak device memory per step mode, with and without activation
checkpointing, and the configuration ``--step auto`` picks on cards of common sizes
(``python -m scripts.benchmark --memory``)."""

from __future__ import annotations

from dataclasses import replace

from scripts.core.config import dataset_info
from scripts.training.memory import MARGIN, MiB, StepConfig, StepPlan, choose, plan_inference, plan_step

MODES = {
    "literal": ("literal", None),
    "reuse": ("reuse", None),
    "batched": ("batched", None),
    "amp": ("batched", "bf16"),
}
CARD_CONTEXT_GIB = 1.0  # what the CUDA context and the driver take of a card before training starts


def sizes_of(sizes: list[int] | None, datasets: list[str] | None) -> list[tuple[str, int, int]]:
    """(name, width, height): each square size, and each dataset's paper model size."""
    out = [(f"{s} x {s}", s, s) for s in sizes or []]
    for name in datasets or []:
        w, h = dataset_info(name).model_size
        out.append((f"{name} {w} x {h}", w, h))
    return out


def memory_rows(
    modes: list[str], where: list[tuple[str, int, int]], n_filters: int, batch: int, cards_gib: list[int]
) -> list[dict]:
    """One row per (size, mode): planned peaks with and without checkpointing, what is live at the plain
    step's peak, inference at batch 1; per size also the default's choice on each card."""
    rows = []
    for name, w, h in where:
        base = StepConfig(n_filters=n_filters, batch_size=batch, width=w, height=h, channels_last=True)
        plans: dict[tuple[str, bool], StepPlan] = {}
        for mode in modes:
            step_mode, amp = MODES[mode]
            for on in (False, True):
                plans[(mode, on)] = plan_step(replace(base, mode=step_mode, amp=amp, checkpointing=on))
        for mode in modes:
            plain, ckpt = plans[(mode, False)], plans[(mode, True)]
            rows.append(
                {
                    "size": name,
                    "width": w,
                    "height": h,
                    "mode": mode,
                    "peak_mb": plain.peak / MiB,
                    "needed_mb": plain.needed / MiB,
                    "checkpointing_peak_mb": ckpt.peak / MiB,
                    "checkpointing_needed_mb": ckpt.needed / MiB,
                    "at_peak_mb": {k: v / MiB for k, v in plain.at_peak.items()},
                    "per_update_mb": {k: v / MiB for k, v in plain.updates.items()},
                    "inference_mb": plan_inference(n_filters, w, h, MODES[mode][1]) / MiB,
                }
            )
        exact = {(p.config.mode, p.config.checkpointing): p for (m, _), p in plans.items() if MODES[m][1] is None}

        def known(config: StepConfig, exact: dict = exact) -> StepPlan:
            key = (config.mode, config.checkpointing)
            if key not in exact:  # a mode the table does not show: planned for the choice alone
                exact[key] = plan_step(config, breakdown=False)
            return exact[key]

        for card in cards_gib:
            free = int((card - CARD_CONTEXT_GIB) * 2**30)
            choice = choose(base, "auto", "auto", free, plan=known)
            rows.append(
                {"size": name, "card_gb": card, "default": choice.plan.config.label if choice.plan else "does not fit"}
            )
    return rows


def verify(rows: list[dict], n_filters: int, batch: int, device: str, budget_s: float, on_row=None) -> list[dict]:
    """On a GPU: the real step of every row (with and without checkpointing), each in a fresh process:
    measured peak (max allocated over timed steps) against the plan, and ms per step (the cost of
    checkpointing). Stops starting new measurements after ``budget_s``; ``on_row`` sees each result."""
    import time

    from scripts.benchmarks.steps import measure

    started, out = time.perf_counter(), []  # type: tuple[float, list[dict]]
    for r in rows:
        if "mode" not in r:
            continue
        w, h = r["width"], r["height"]
        for ckpt in (False, True):
            if time.perf_counter() - started > budget_s:
                return out
            m = measure(
                mode=r["mode"],
                size=w,
                height=h,
                checkpointing=ckpt,
                n_filters=n_filters,
                batch=batch,
                device_name=device,
                reps=2,
                warmup=2,
                threads=None,
                channels_last="on",
            )
            planned = r["checkpointing_peak_mb" if ckpt else "peak_mb"]
            result = {
                "size": r["size"],
                "mode": r["mode"],
                "checkpointing": ckpt,
                "planned_mb": planned,
                "measured_mb": m.get("peak_mb"),
                "ms_per_step": m.get("ms_per_step"),
                "error": m.get("error"),
            }
            if result["measured_mb"]:
                result["plan_error"] = planned / result["measured_mb"] - 1
            out.append(result)
            if on_row:
                on_row(result)
    return out


def format_verified(results: list[dict]) -> str:
    head = f"{'size':<22}{'step':<26}{'planned MiB':>12}{'measured MiB':>13}{'plan error':>11}{'ms/step':>9}"
    lines = ["memory plan against the GPU (max allocated over timed steps)", head, "-" * len(head)]
    for r in results:
        label = r["mode"] + (" + checkpointing" if r["checkpointing"] else "")
        if r.get("error"):
            lines.append(f"{r['size']:<22}{label:<26}  failed: {str(r['error'])[:80]}")
            continue
        lines.append(
            f"{r['size']:<22}{label:<26}{r['planned_mb']:>12,.0f}{r['measured_mb']:>13,.0f}"
            f"{100 * r['plan_error']:>10.1f}%{r['ms_per_step']:>9.0f}"
        )
    return "\n".join(lines)


def format_memory(rows: list[dict], n_filters: int, batch: int) -> str:
    head = (
        f"{'size':<22}{'mode':<9}{'peak MiB':>10}{'needs MiB':>11}{'ckpt peak':>11}{'ckpt needs':>12}"
        f"{'weights+Adam':>14}{'grads':>8}{'activations':>13}{'inference':>11}"
    )
    lines = [
        f"memory plan of one training step (CUDA max allocated; batch {batch}, n = {n_filters}, NHWC; 'needs' adds "
        f"the margin: x{MARGIN.factor:.2f} + {MARGIN.workspace // MiB} MiB)",
        head,
        "-" * len(head),
    ]
    for r in rows:
        if "mode" not in r:
            continue
        at = r["at_peak_mb"]
        lines.append(
            f"{r['size']:<22}{r['mode']:<9}{r['peak_mb']:>10,.0f}{r['needed_mb']:>11,.0f}{r['checkpointing_peak_mb']:>11,.0f}"
            f"{r['checkpointing_needed_mb']:>12,.0f}{at['weights'] + at['optimizer']:>14,.0f}{at['gradients']:>8,.0f}"
            f"{at['activations'] + at['batch']:>13,.0f}{r['inference_mb']:>11,.0f}"
        )
    updates = [r for r in rows if r.get("per_update_mb")]
    if updates:
        names = list(updates[0]["per_update_mb"])
        lines += ["", "peak MiB within each network update (the update that ends with that network's optimiser step):"]
        lines.append(f"{'size':<22}{'mode':<9}" + "".join(f"{n[:14]:>16}" for n in names))
        for r in updates:
            lines.append(f"{r['size']:<22}{r['mode']:<9}" + "".join(f"{r['per_update_mb'][n]:>16,.0f}" for n in names))
    cards = [r for r in rows if "card_gb" in r]
    if cards:
        lines += [
            "",
            f"what --step auto / --activation-checkpointing auto pick (free = card - {CARD_CONTEXT_GIB:g} GiB):",
        ]
        for r in cards:
            lines.append(f"  {r['size']:<22}{r['card_gb']:>4} GB card: {r['default']}")
    return "\n".join(lines)
