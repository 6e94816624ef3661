"""The run card: `report.md` + `metrics.json` + PNG plots of a pipeline run.

Plots come from the training log (metrics.jsonl): loss terms per step, the KL of each student
layer while it was paired, and the re-weighting weight each teacher layer received.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from lead_ray.storage import atomic_file, atomic_write_json, atomic_write_text

LOSS_TERMS = ("loss", "loss_contrastive", "loss_teacher", "loss_response", "loss_layer")


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


def plot_training(records: Sequence[dict], folder: str | Path) -> list[Path]:
    """Write loss.png, layer_kl.png, layer_weights.png into `folder`; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    if not records:
        return []
    steps = [r["step"] for r in records]
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for term in LOSS_TERMS:
        if any(term in r for r in records):
            ax.plot(
                steps, [r.get(term, math.nan) for r in records], label=term.replace("loss_", "")
            )
    ax.set(xlabel="optimizer step", ylabel="loss", title="Training loss terms")
    ax.legend()
    written.append(_save(fig, folder / "loss.png"))
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


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"
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


def write_run_card(run, results: dict[str, dict]) -> dict:
    """report.md + metrics.json + plots/ for a run folder (a `lead_ray.stages.run.Run`);
    returns the headline metrics."""
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
    train_info = ""
    if records:
        first, last = records[0], records[-1]
        train_info = (
            f"{last['step']} optimizer steps; loss {first['loss']:.4f} -> {last['loss']:.4f}; "
            f"student in-batch accuracy {first.get('student_acc', 0):.3f} -> "
            f"{last.get('student_acc', 0):.3f}.\n"
        )
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
                [{"stage": k, "seconds": v} for k, v in run.times.items()], ["stage", "seconds"]
            ),
        ),
        ("Config", "```yaml\n" + cfg.to_yaml() + "```"),
    ]
    headline = {name: r["metrics"] for name, r in results.items()}
    metrics = {"systems": results, "times": run.times, "headline": headline}
    write_report(layout.report, f"lead-ray run card: {cfg.name}", sections, metrics, layout.metrics)
    return headline
