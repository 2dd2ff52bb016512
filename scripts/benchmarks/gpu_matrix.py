"""Where a training step's time goes on a GPU, configuration by configuration (``python -m scripts.benchmark --matrix``).

For each variant (step mode x precision x memory format x cudnn.benchmark x torch.compile) on one
fixed set of batches: the first step's seconds (autotuning, compiling), eager wall ms per step over
back-to-back steps, the host's enqueue ms per step (time for ``step()`` to return), GPU ms per step
by CUDA events, whole-step CUDA graph replay ms per step (``GraphedStep``: the project's own capture,
not a copy of it), peak memory, the gradient error of one G_A + D backward against float64 from
the same weights, and the gradients after three graphed steps against three eager steps next to
three eager steps against three eager steps again (the noise floor of non-deterministic kernels).
Then a kernel profile (top kernels, time by category) of the baseline and of the fastest variant,
and the hardware ceilings (copy bandwidth, GEMM rates). Every row is written to ``matrix.json`` as
soon as it is measured; ``format_matrix`` prints the tables from it.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import math
import re
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from model import build_networks
from scripts.training.cuda_graph import GraphedStep
from scripts.training.step import GANTrainer, LossWeights, adversarial_loss, seg_losses

# the question each phase answers first; compiled variants come after the profiles (a long compile
# cannot cost them), the rest while the budget lasts
PHASES = {
    "first": [
        dict(name="batched fp32 NHWC det (before)", mode="batched", dtype="fp32", nhwc=True, bench=False, det=True),
        dict(name="batched fp32 NHWC bench", mode="batched", dtype="fp32", nhwc=True, bench=True),
        dict(name="batched bf16 NHWC bench", mode="batched", dtype="bf16", nhwc=True, bench=True),
    ],
    "compiled": [
        dict(
            name="batched bf16 NHWC bench compile",
            mode="batched",
            dtype="bf16",
            nhwc=True,
            bench=True,
            compile="default",
            need=150,
        ),
        dict(
            name="batched fp32 NHWC bench compile",
            mode="batched",
            dtype="fp32",
            nhwc=True,
            bench=True,
            compile="default",
            need=150,
        ),
    ],
    "more": [
        dict(name="reuse fp32 NHWC bench", mode="reuse", dtype="fp32", nhwc=True, bench=True),
        dict(name="reuse bf16 NHWC bench", mode="reuse", dtype="bf16", nhwc=True, bench=True),
        dict(name="batched fp32 NCHW bench", mode="batched", dtype="fp32", nhwc=False, bench=True),
        dict(name="batched fp16 NHWC bench (scaler, no graph)", mode="batched", dtype="fp16", nhwc=True, bench=True),
    ],
}
AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}
CATEGORIES = [
    ("batchnorm", r"batch_norm|batchnorm|bn_fw|bn_bw|welford|BatchNorm"),
    ("conv", r"conv|cudnn|xmma|implicit|sm90|sm80|wgrad|dgrad|fprop|gemm|cutlass|winograd"),
    ("triton (fused)", r"triton"),
    ("cat", r"[Cc]at[A-Z_]|CatArray|cat_"),
    ("pool/upsample", r"max_pool|upsample|pool"),
    ("adam", r"adam|Adam|multi_tensor"),
    ("reduce", r"reduce|Reduce"),
    ("elementwise", r"elementwise|vectorized|unrolled|Elementwise"),
    ("memcpy/memset", r"[Mm]emcpy|[Mm]emset"),
]


class Matrix:
    """One run of the variant matrix on ``device`` within ``budget_s`` seconds, results in ``out``."""

    def __init__(
        self,
        device: torch.device,
        size: int,
        n_filters: int,
        out: Path,
        budget_s: float,
        steps: int = 6,
        replays: int = 15,
        say: Callable[[str], None] = print,
    ) -> None:
        self.device, self.size, self.nf, self.out = device, size, n_filters, out
        self.cuda = device.type == "cuda"
        self.start, self.budget, self.steps, self.replays, self.say = time.time(), budget_s, steps, replays, say
        self.state: dict = {"rows": [], "tables": []}
        self.reference: dict | None = None
        self.kept: dict[str, tuple] = {}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget - (time.time() - self.start)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def save(self) -> None:
        self.state["elapsed_s"] = time.time() - self.start
        (self.out / "matrix.json").write_text(json.dumps(self.state, indent=1))

    # -- building blocks -------------------------------------------------------------------------
    def batches(self, k: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(1)
        return [
            (
                torch.randn(2, 3, self.size, self.size, generator=g).to(self.device),
                (torch.rand(2, 3, self.size, self.size, generator=g) > 0.88).float().to(self.device),
            )
            for _ in range(k)
        ]

    def trainer(self, spec: dict) -> GANTrainer:
        torch.manual_seed(0)
        nets = {k: v.to(self.device) for k, v in build_networks(self.nf, with_discriminator=True).items()}
        tr = GANTrainer(
            nets, mode=spec["mode"], amp_dtype=AMP.get(spec["dtype"]), channels_last=spec["nhwc"], fused_adam=True
        )
        if spec.get("compile"):
            tr.compile(spec["compile"])
        return tr

    def probe(self, nets: dict, x: torch.Tensor, y: torch.Tensor, dtype: str, nhwc: bool) -> dict[str, torch.Tensor]:
        """Gradients of one G_A + D backward from the untouched weights (buffers restored afterwards)."""
        buffers = [(b, b.clone()) for k in ("G_A", "D") for b in nets[k].buffers()]
        fmt = torch.channels_last if nhwc else torch.contiguous_format
        wide = next(nets["D"].parameters()).dtype
        xx, yy = x.to(wide).contiguous(memory_format=fmt), y.to(wide).contiguous(memory_format=fmt)
        scale = 1024.0 if dtype == "fp16" else 1.0
        ctx = torch.autocast(self.device.type, dtype=AMP[dtype]) if dtype in AMP else contextlib.nullcontext()
        with ctx:
            loss = seg_losses(nets["G_A"](xx).float(), yy, LossWeights()) + adversarial_loss(
                nets["D"](xx, yy).float(), True
            )
        (scale * loss).backward()
        grads = {
            k: torch.cat([p.grad.detach().double().flatten() / scale for p in nets[k].parameters()]).cpu()
            for k in ("G_A", "D")
        }
        with torch.no_grad():
            for k in ("G_A", "D"):
                for p in nets[k].parameters():
                    p.grad = None
            for b, v in buffers:
                b.copy_(v)
        return grads

    def timed(self, fn: Callable, data: list, n: int) -> tuple[float, float, float]:
        """Back-to-back steps: wall ms/step, median host enqueue ms/step, GPU ms/step by events."""
        self.sync()
        events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if self.cuda else None
        if events:
            events[0].record()
        host = []
        t0 = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            fn(*data[i % len(data)])
            host.append(time.perf_counter() - t)
        if events:
            events[1].record()
        self.sync()
        wall = (time.perf_counter() - t0) / n
        return 1e3 * wall, 1e3 * statistics.median(host), events[0].elapsed_time(events[1]) / n if events else math.nan

    # -- one variant -----------------------------------------------------------------------------
    def run_variant(self, spec: dict, data: list) -> tuple[dict, GANTrainer]:
        row = {"name": spec["name"], **{k: spec.get(k) for k in ("mode", "dtype", "nhwc", "bench", "compile")}}
        if self.cuda:
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = spec["bench"], bool(spec.get("det"))
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if self.cuda else 0
        tr = self.trainer(spec)
        if not spec.get("compile"):
            if self.reference is None:
                wide = {k: copy.deepcopy(tr.nets[k]).double() for k in ("G_A", "D")}
                self.reference = {"probe64": self.probe(wide, *data[0], "fp32", False)}
                del wide
            got = self.probe(tr.nets, *data[0], spec["dtype"], spec["nhwc"])
            for k in ("G_A", "D"):
                ref = self.reference["probe64"][k]
                row[f"grad_err_{k}"] = float((got[k] - ref).norm() / ref.norm().clamp_min(1e-30))
        t = time.perf_counter()
        losses = tr.step(*data[0])
        self.sync()
        row["first_step_s"] = time.perf_counter() - t
        row["losses"] = {k: float(v) for k, v in losses.items()}
        for i in range(2):
            tr.step(*data[(i + 1) % len(data)])
        row["eager_ms"], row["host_ms"], row["gpu_ms"] = self.timed(tr.step, data, self.steps)
        if self.cuda:
            row["peak_gb"] = (torch.cuda.max_memory_allocated() - base) / 1e9
        if self.cuda and not tr.scaler.is_enabled() and self.left() > 25:
            try:
                row.update(self.graph_rows(tr, data))
                row["peak_gb_graph"] = (torch.cuda.max_memory_allocated() - base) / 1e9
            except Exception as err:
                row["graph_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        return row, tr

    def graph_rows(self, tr: GANTrainer, data: list) -> dict:
        """Whole-step graph replay time, and its gradients after 3 steps against eager's (and eager's noise)."""
        state = tr.state_tensors()
        saved = [t.detach().clone() for t in state]

        def restore() -> None:
            with torch.no_grad():
                for t, v in zip(state, saved):
                    t.copy_(v)

        def grads() -> dict[str, torch.Tensor]:
            return {
                k: torch.cat([p.grad.detach().float().flatten() for p in n.parameters() if p.grad is not None]).cpu()
                for k, n in tr.nets.items()
            }

        def three(fn) -> tuple[list, dict]:
            restore()
            losses = [{k: float(v) for k, v in fn(*data[i]).items()} for i in range(3)]
            return losses, grads()

        eager = three(tr.step)
        again = three(tr.step)
        graphed = GraphedStep(tr, "on", warmup=2)
        for i in range(3):  # warm-up on a side stream, capture, first replay
            graphed(*data[i])
        if graphed.replay is None:
            raise RuntimeError(graphed.status)
        replayed = three(graphed)

        def rel(a: dict, b: dict) -> float:
            return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-30)) for k in b)

        out = {"graph_vs_eager_grad": rel(replayed[1], eager[1]), "eager_vs_eager_grad": rel(again[1], eager[1])}
        out["graph_ms"], out["graph_host_ms"], out["graph_gpu_ms"] = self.timed(graphed, data, self.replays)
        return out

    # -- the whole matrix ------------------------------------------------------------------------
    def run(self) -> dict:
        cuda = self.cuda
        name = torch.cuda.get_device_name() if cuda else "cpu"
        self.state["header"] = (
            f"== torch {torch.__version__}, {name}, cudnn {torch.backends.cudnn.version() if cuda else '-'}"
            f"; {self.size} px, batch 2, n={self.nf}; TF32 convolutions "
            f"{'on' if cuda and torch.backends.cudnn.allow_tf32 else 'off'}"
        )
        self.say(self.state["header"])
        self.state["ceilings"] = ceilings() if cuda else {}
        self.save()
        data = self.batches()
        phases = PHASES if cuda else {"first": [s for s in PHASES["first"] if not s.get("det")][:2]}
        for spec in phases.get("first", []):
            self.variant(spec, data)
        self.profile("baseline", data)
        self.profile("best", data)
        before = self.kept.get("best", (None, None, math.inf))[2]
        for spec in phases.get("compiled", []):
            self.variant(spec, data)
        if self.kept.get("best", (None, None, math.inf))[2] < before:
            self.profile("best", data)
        for spec in phases.get("more", []):
            self.variant(spec, data)
        self.save()
        return self.state

    def variant(self, spec: dict, data: list) -> None:
        if self.left() < spec.get("need", 30):
            self.say(f"-- skipped (budget): {spec['name']}")
            return
        self.say(f"-- {spec['name']} ({self.left():.0f} s left)")
        tr = None
        try:
            row, tr = self.run_variant(spec, data)
        except Exception as err:
            row = {
                "name": spec["name"],
                "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}",
            }
            with open(self.out / "errors.txt", "a") as f:
                traceback.print_exc(file=f)
        self.state["rows"].append(row)
        self.save()
        if tr is not None:
            if "baseline" not in self.kept:
                self.kept["baseline"] = (tr, spec)
            elif "best" not in self.kept or best_ms(row) < self.kept["best"][2]:
                self.kept["best"] = (tr, spec, best_ms(row))
        del tr
        if self.cuda:
            torch.cuda.empty_cache()

    def profile(self, label: str, data: list) -> None:
        if label not in self.kept or not self.cuda or self.left() < 10:
            return
        tr, spec = self.kept[label][:2]
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = spec["bench"], bool(spec.get("det"))
        try:
            text, summary = kernel_table(tr, data[0], f"{label}: {spec['name']}", self.out)
            self.state["tables"].append(text)
            self.state.setdefault("kernels", {})[label] = {"variant": spec["name"], **summary}
        except Exception as err:
            self.state["tables"].append(f"-- profile {label} failed: {type(err).__name__}: {err}")
        self.save()


def best_ms(row: dict) -> float:
    return min(row.get("graph_ms") or math.inf, row.get("eager_ms") or math.inf)


def ceilings() -> dict[str, float]:
    """Measured copy bandwidth (TB/s) and dense GEMM rates (TFLOP/s, bf16 and TF32)."""
    out = {}
    a = torch.empty(2**30, dtype=torch.uint8, device="cuda").random_()
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        b.copy_(a)
    torch.cuda.synchronize()
    out["copy_TBps"] = 2 * 2**30 * 20 / (time.perf_counter() - t) / 1e12
    del a, b
    tf32 = torch.backends.cuda.matmul.allow_tf32
    for dt, label in ((torch.bfloat16, "bf16"), (torch.float32, "tf32")):
        torch.backends.cuda.matmul.allow_tf32 = dt == torch.float32
        m = torch.randn(8192, 8192, device="cuda", dtype=dt)
        for _ in range(2):
            m @ m
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(8):
            m @ m
        torch.cuda.synchronize()
        out[f"{label}_gemm_TFLOPs"] = 8 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return out


def kernel_table(tr: GANTrainer, batch: tuple, label: str, out: Path) -> tuple[str, dict]:
    """torch.profiler over one step: kernel count, GPU-busy ms, time by category, the top 15 kernels."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        tr.step(*batch)
        torch.cuda.synchronize()
    kernels = collections.defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            kernels[e.name][0] += 1
            kernels[e.name][1] += e.time_range.elapsed_us()
    total, count = sum(v[1] for v in kernels.values()), sum(v[0] for v in kernels.values())
    cats = collections.defaultdict(lambda: [0, 0.0])
    for name, (c, t) in kernels.items():
        cat = next((k for k, rx in CATEGORIES if re.search(rx, name)), "other")
        cats[cat][0] += c
        cats[cat][1] += t
    lines = [
        f"-- kernels of one step, {label}: {count} kernels, {total / 1e3:.1f} ms GPU busy",
        f"{'category':<16}{'kernels':>8}{'ms':>8}{'%':>6}",
    ]
    lines += [
        f"{k:<16}{c:>8}{t / 1e3:>8.2f}{100 * t / max(total, 1):>6.1f}"
        for k, (c, t) in sorted(cats.items(), key=lambda kv: -kv[1][1])
    ]
    lines.append(f"{'top-15 kernels':<70}{'calls':>6}{'ms':>8}")
    lines += [
        f"{name[:69]:<70}{c:>6}{t / 1e3:>8.2f}"
        for name, (c, t) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:15]
    ]
    with contextlib.suppress(Exception):
        prof.export_chrome_trace(str(out / f"trace_{label.split(':')[0]}.json"))
    return "\n".join(lines), {
        "kernels": count,
        "gpu_busy_ms": total / 1e3,
        "categories": {k: [c, t / 1e3] for k, (c, t) in cats.items()},
    }


def _f(v, fmt: str = "{:.1f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def format_matrix(out: Path) -> str:
    """The tables of ``out/matrix.json``: ceilings, kernel profiles, then the variant table and the best."""
    st = json.loads((out / "matrix.json").read_text())
    lines = [st.get("header", "")]
    if st.get("ceilings"):
        lines.append("== ceilings: " + ", ".join(f"{k} {v:.1f}" for k, v in st["ceilings"].items()))
    lines += st.get("tables", [])
    lines.append(
        "== step variants, ms/step (eager wall, host enqueue, GPU by events, CUDA graph replay); peak GB; "
        "gradient error vs float64 (G_A, D); gradients after 3 graphed vs 3 eager steps, and eager vs eager"
    )
    lines.append(
        f"{'variant':<40}{'first s':>8}{'eager':>7}{'host':>7}{'GPU':>7}{'graph':>7}{'peakGB':>7}"
        f"{'errGA':>9}{'errD':>9}{'g-vs-e':>9}{'e-vs-e':>9}"
    )
    rows = st.get("rows", [])
    for r in rows:
        if "error" in r:
            lines.append(f"{r['name']:<40}  failed: {r['error']}")
            continue
        lines.append(
            f"{r['name']:<40}{_f(r.get('first_step_s')):>8}{_f(r.get('eager_ms')):>7}{_f(r.get('host_ms')):>7}"
            f"{_f(r.get('gpu_ms')):>7}{_f(r.get('graph_ms')):>7}{_f(r.get('peak_gb_graph', r.get('peak_gb'))):>7}"
            f"{_f(r.get('grad_err_G_A'), '{:.1e}'):>9}{_f(r.get('grad_err_D'), '{:.1e}'):>9}"
            f"{_f(r.get('graph_vs_eager_grad'), '{:.1e}'):>9}{_f(r.get('eager_vs_eager_grad'), '{:.1e}'):>9}"
            + (f"  graph: {r['graph_error']}" if "graph_error" in r else "")
        )
    ok = [r for r in rows if "error" not in r]
    if ok:
        b = min(ok, key=best_ms)
        lines.append(
            f"== best: {b['name']}{' + CUDA graph' if b.get('graph_ms') == best_ms(b) else ''} at "
            f"{best_ms(b):.1f} ms/step -> 13,500 steps (DRIVE_AV, 1500 epochs) in {13500 * best_ms(b) / 6e4:.1f} min"
        )
    return "\n".join(lines)


def train_flags(out: Path, allow_amp: bool = False) -> list[str]:
    """``scripts/train.py`` options of the fastest variant it can express (float32 unless ``allow_amp``)."""
    try:
        rows = [r for r in json.loads((out / "matrix.json").read_text())["rows"] if "error" not in r]
    except (OSError, ValueError, KeyError):
        return []
    rows = [r for r in rows if (allow_amp or r["dtype"] == "fp32") and r.get("bench")]
    if not rows:
        return []
    b = min(rows, key=best_ms)
    flags = ["--step", b["mode"], "--channels-last", "on" if b["nhwc"] else "off"]
    flags += ["--amp", b["dtype"]] if b["dtype"] in AMP else []
    flags += ["--compile", b["compile"]] if b.get("compile") else []
    flags += ["--cuda-graph", "on" if b.get("graph_ms") and b["graph_ms"] < b["eager_ms"] else "off"]
    return flags
