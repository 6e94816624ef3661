"""The run card: `report.md` + `metrics.json` + PNG plots of a pipeline run.

Plots come from the training log (metrics.jsonl): loss terms per step (smoothed, raw values faint
behind), the dev metrics, the KL of each student layer while it was paired, and the re-weighting
weight each teacher layer received.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from lead_ray.storage import atomic_file, atomic_write_json, atomic_write_text

LOSS_TERMS = ("loss", "loss_contrastive", "loss_teacher", "loss_response", "loss_layer")
TRACKED = (  # what the run card compares between the start and the end of training
    ("loss", "loss"),
    ("student_acc", "student in-batch accuracy"),
    ("teacher_acc", "teacher in-batch accuracy"),
)


def _series_by_layer(
    records: Sequence[dict], key: str, side: int
) -> dict[int, list[tuple[int, float]]]:
    """{layer: [(step, value)]}: values of `key` (one per pair) keyed by the pair's layer."""
    out: dict[int, list[tuple[int, float]]] = {}
    for r in records:
        for pair, value in zip(r.get("pairs", []), r.get(key, []), strict=True):
            out.setdefault(pair[side], []).append((r["step"], value))
    return out


def _save(fig, path: Path) -> Path:
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    return path


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing (the first points are not pulled
    towards 0); NaNs (steps that lack the term) pass through.

    >>> [round(v, 3) for v in smooth([1.0, 3.0, 3.0], 0.5)]
    [1.0, 2.333, 2.714]
    """
    out, ema, n = [], 0.0, 0
    for v in values:
        if math.isnan(v):
            out.append(math.nan)
            continue
        n += 1
        ema = weight * ema + (1 - weight) * v
        out.append(ema / (1 - weight**n))
    return out


def tenth_means(values: Sequence[float]) -> tuple[float, float]:
    """Means of the first and the last tenth of a series (at least one value each): how a
    run's start and end compare without reading two single, noisy steps.

    >>> tenth_means([5.0] * 10 + [1.0] * 80 + [2.0] * 10)
    (5.0, 2.0)
    """
    n = max(1, len(values) // 10)
    return sum(values[:n]) / n, sum(values[-n:]) / n


def dev_series(records: Sequence[dict]) -> dict[str, list[tuple[int, float]]]:
    """{dev metric: [(step, value)]} from the records that carry a dev evaluation."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for key, value in r.items():
            if key.startswith("dev_") and key != "dev_best":
                out.setdefault(key[4:], []).append((r["step"], value))
    return out


def plot_training(records: Sequence[dict], folder: str | Path) -> list[Path]:
    """Write loss.png (smoothed, raw faint behind), dev.png (with dev evaluation),
    layer_kl.png and layer_weights.png into `folder`; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    if not records:
        return []
    steps = [r["step"] for r in records]
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    weight = 0.9 if len(records) >= 50 else 0.6
    for i, term in enumerate(t for t in LOSS_TERMS if any(t in r for r in records)):
        raw = [r.get(term, math.nan) for r in records]
        color = f"C{i}"
        ax.plot(steps, raw, color=color, alpha=0.2, lw=0.8)
        ax.plot(steps, smooth(raw, weight), color=color, label=term.replace("loss_", ""))
    title = f"Training loss terms (EMA {weight}; raw values faint)"
    ax.set(xlabel="optimizer step", ylabel="loss", title=title)
    ax.legend()
    written.append(_save(fig, folder / "loss.png"))
    plt.close(fig)
    dev = dev_series(records)
    if dev:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, points in dev.items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, "o-", ms=3, label=name)
        title = "Dev evaluation (the student re-ranks each dev query's candidates)"
        ax.set(xlabel="optimizer step", ylabel="dev metric", title=title)
        ax.legend()
        written.append(_save(fig, folder / "dev.png"))
        plt.close(fig)
    for key, side, title, name in (
        ("layer_kl", 0, "KL(teacher || student) per student layer", "layer_kl.png"),
        ("layer_weights", 1, "Re-weighting weight per teacher layer", "layer_weights.png"),
    ):
        series = _series_by_layer(records, key, side)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for layer in sorted(series):
            xs, ys = zip(*series[layer], strict=True)
            ax.plot(xs, ys, ".", ms=3, label=f"layer {layer}")
        ax.set(xlabel="optimizer step", ylabel=key, title=title)
        ax.legend(fontsize=7, ncol=2)
        written.append(_save(fig, folder / name))
        plt.close(fig)
    return written


def training_summary(records: Sequence[dict], manifest: dict) -> str:
    """The run card's training paragraph: steps, where the run stopped, loss and in-batch
    accuracy as means of the first and last tenth of the logged steps, throughput, and which
    student was selected and why."""
    if not records:
        return ""
    last = records[-1]["step"]
    stopped = ""
    if manifest.get("early_stopped"):
        stopped = (
            f" of {manifest['steps']} (stopped early: no dev gain in `train.early_stop` evals)"
        )
    lines = [f"{last} optimizer steps{stopped}."]
    for key, label in TRACKED:
        values = [r[key] for r in records if key in r]
        if values:
            a, b = tenth_means(values)
            lines.append(
                f"{label} {a:.4f} -> {b:.4f} (means of the first and last tenth of "
                f"{len(values)} logged steps)"
            )
    if manifest.get("seconds"):
        done = last - (records[0].get("resumed_from") or 0)
        line = f"{done / manifest['seconds']:.2f} steps/s over {manifest['seconds']:.0f} s"
        rate = [r["queries_per_s"] for r in records if "queries_per_s" in r]
        if rate:
            line += f"; {sum(rate) / len(rate):,.1f} training queries/s within the steps"
        lines.append(line)
    if manifest.get("selection"):
        lines.append(f"Selected `{manifest['selected']}`: {manifest['selection']['why']}.")
    for name, points in list(dev_series(records).items())[:1]:
        lines.append(
            f"Dev {name} over {len(points)} evaluations: first {points[0][1]:.4f} "
            f"(step {points[0][0]}), last {points[-1][1]:.4f} (step {points[-1][0]}), "
            f"best {max(v for _, v in points):.4f}."
        )
    return "\n".join(f"- {ln}" for ln in lines) + "\n"


def _fmt(value) -> str:
    if isinstance(value, float):
        if abs(value) < 1:  # metrics, fractions
            return f"{value:.4f}"
        return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join(
        "| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows
    )


def write_report(
    report: Path, title: str, sections: Sequence[tuple[str, str]], metrics: dict, metrics_file: Path
) -> Path:
    """`report` (markdown) from (heading, markdown body) sections, and `metrics_file` (JSON),
    atomically."""
    body = f"# {title}\n\n" + "".join(f"## {h}\n\n{b.rstrip()}\n\n" for h, b in sections)
    atomic_write_text(report, body)
    atomic_write_json(metrics_file, metrics)
    return report


def _system_rows(results: dict[str, dict], metric_names: Sequence[str]) -> list[dict]:
    rows = []
    teacher = results.get("teacher", {}).get("metrics", {})
    for name in ("teacher-init", "teacher", "student-init", "student"):
        if name not in results:
            continue
        r = results[name]
        row = {
            "system": name,
            "layers": r.get("layers"),
            "params (M)": (r.get("params") or 0) / 1e6,
        }
        row.update({m: r["metrics"].get(m) for m in metric_names})
        first = metric_names[0] if metric_names else None
        if first and teacher.get(first) and name != "teacher":
            row[f"{first} / teacher"] = r["metrics"].get(first, 0.0) / teacher[first]
        rows.append(row)
    return rows


def write_run_card(run, results: dict[str, dict], times: dict[str, float]) -> dict:
    """report.md + metrics.json + plots/ for a run folder (a `lead_ray.stages.run.Run`);
    `times` are the stages' wall seconds. Returns the headline metrics."""
    from lead_ray.distill.metrics_log import read_metrics

    cfg, layout = run.cfg, run.layout
    records = read_metrics(layout.train_metrics)
    plots = plot_training(records, layout.plots)
    names = list(next(iter(results.values()))["metrics"]) if results else []
    rows = _system_rows(results, names)
    cols = ["system", "layers", "params (M)", *names] + ([f"{names[0]} / teacher"] if names else [])
    perf = [
        {
            "system": n,
            "passages/s": r.get("passages_per_second") or "-",
            "index MB": (r.get("index_bytes") or 0) / 2**20,
            "search QPS": r.get("search_qps") or r.get("rerank_qps"),
            "ANN recall": "-" if r.get("ann_recall") is None else r["ann_recall"],
        }
        for n, r in results.items()
    ]
    from lead_ray.storage import read_manifest

    train_info = training_summary(records, read_manifest(layout.train) or {})
    rel = layout.plots.relative_to(layout.root)
    sections = [
        (
            "Retrieval quality",
            f"Split `{run.eval_split}`, corpus `{run.data.corpus}`.\n\n"
            + markdown_table(rows, cols),
        ),
        ("Training", train_info + "".join(f"\n![{p.stem}]({rel}/{p.name})\n" for p in plots)),
        (
            "Speed and size",
            markdown_table(perf, ["system", "passages/s", "index MB", "search QPS", "ANN recall"]),
        ),
        (
            "Stage times (s)",
            markdown_table(
                [{"stage": k, "seconds": v} for k, v in times.items()], ["stage", "seconds"]
            ),
        ),
        ("Config", "```yaml\n" + cfg.to_yaml() + "```"),
    ]
    headline = {name: r["metrics"] for name, r in results.items()}
    metrics = {"systems": results, "times": times, "headline": headline}
    write_report(layout.report, f"lead-ray run card: {cfg.name}", sections, metrics, layout.metrics)
    return headline
