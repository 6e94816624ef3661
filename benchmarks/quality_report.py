"""Tables and plots of the SciFact quality benchmark, written into docs/results.md.

Reads only what benchmarks/quality.py left in its output folder (record.json of every cell and
seed, eval JSONs of the reference systems, metrics.jsonl of the training runs, invocations.jsonl)
and replaces the generated blocks of docs/results.md, the text between
`<!-- quality:NAME -->` and `<!-- /quality:NAME -->`; the prose around them is left alone.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

from lead_ray.evaluation.report import markdown_table
from lead_ray.stages.layout import RunLayout
from lead_ray.storage import atomic_file, atomic_write_text

METRICS = ("nDCG@10", "RR@10", "R@100")
METHOD_ORDER = ("contrastive", "response", "lead")
TEACHER_ORDER = ("de", "colbert", "ce")
ALIGNMENT_FILE, ALIGNMENT_TEACHER = (
    "layer_alignment.json",
    "_teacher",
)  # benchmarks/layer_alignment.py


def load_records(out: Path) -> dict[str, dict[int, dict]]:
    """{cell: {seed: record}} of every finished student run."""
    records: dict[str, dict[int, dict]] = defaultdict(dict)
    for f in sorted((out / "cells").glob("**/record.json")):
        rec = json.loads(f.read_text(encoding="utf-8"))
        records[rec["cell"]][rec["seed"]] = rec
    return dict(records)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:.4f}" if len(values) == 1 else f"{m:.4f} ± {s:.4f}"


def _system(out: Path, folder: str, system: str) -> dict | None:
    """A system's dev and test evaluations in the run folder `out/folder` (None when missing)."""
    layout = RunLayout(out / folder)
    dev, test = (layout.evaluation(system, s) for s in ("dev", "test"))
    if not (dev.is_file() and test.is_file()):
        return None
    return {s: json.loads(p.read_text(encoding="utf-8")) for s, p in (("dev", dev), ("test", test))}


def _untuned(out: Path) -> str | None:
    """The reference system the driver mined with and evaluated in the root run folder."""
    names = sorted(p.parent.name for p in (out / "eval").glob("*/dev.json"))
    return names[0] if len(names) == 1 else None


def teacher_rows(out: Path) -> tuple[list[dict], dict[str, float]]:
    """Rows for the un-tuned MiniLM, each warmed-up teacher and the untrained student; test
    nDCG@10 per teacher kind."""
    rows, ndcg = [], {}
    systems = [("un-tuned all-MiniLM-L6-v2 (cosine, as packaged)", ".", _untuned(out), None)]
    systems += [
        (f"{k} teacher, warmed up", f"teachers/{k}", "teacher", k) for k in ("de", "colbert", "ce")
    ]
    systems += [
        (
            "2-layer student before training (DE teacher's lower blocks)",
            "systems/student-init",
            "student-init",
            None,
        )
    ]
    for label, folder, system, kind in systems:
        ev = _system(out, folder, system) if system else None
        if ev is None:
            continue
        record = out / folder / "record.json"
        rec = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        row = _system_row(label, [ev])
        row["warm-up steps"] = rec.get("steps", "-")
        row["train s"] = rec.get("train_seconds", "-")
        rows.append(row)
        if kind:
            ndcg[kind] = ev["test"]["metrics"]["nDCG@10"]
    return rows + trained_teacher_rows(out), ndcg


def _system_row(label: str, evs: list[dict]) -> dict:
    """One evaluated system's table row; several evaluations (seeds) read as mean ± std."""
    # the driver names the DE teacher's run, copied in as the re-rankers' first stage, "de-teacher"
    how = (
        evs[0]["test"]
        .get("mode", "full retrieval (Flat)")
        .replace("de-teacher", "the DE teacher's")
    )
    row = {
        "system": label,
        "how evaluated": how,
        "params (M)": evs[0]["test"]["params"] / 1e6,
        "dev nDCG@10": fmt([e["dev"]["metrics"]["nDCG@10"] for e in evs]),
    }
    row.update({f"test {m}": fmt([e["test"]["metrics"][m] for e in evs]) for m in METRICS})
    return row


def trained_teacher_rows(out: Path) -> list[dict]:
    """Teachers trained along with their students (one row per cell, mean ± std over seeds)."""
    rows = []
    for cell_dir in sorted(p for p in (out / "cells").glob("*/*/*") if p.is_dir()):
        evs = [
            ev
            for seed in sorted(cell_dir.glob("seed-*"))
            if (ev := _system(out, str(seed.relative_to(out)), "teacher"))
        ]
        if not evs:
            continue
        cell = str(cell_dir.relative_to(out / "cells"))
        label = (
            f"{cell.split('/')[0]} teacher after training with its student ({cell}, "
            f"{len(evs)} seed{'s' if len(evs) > 1 else ''})"
        )
        rows.append({**_system_row(label, evs), "warm-up steps": "-", "train s": "-"})
    return rows


def student_rows(records: dict, cells: list[str], teacher_ndcg: dict[str, float]) -> list[dict]:
    rows = []
    for cell in cells:
        runs = [records[cell][s] for s in sorted(records.get(cell, {}))]
        if not runs:
            continue
        row = {"cell": cell, "seeds": len(runs)}
        for m in METRICS:
            row[f"test {m}"] = fmt([r["test"][m] for r in runs])
        t = teacher_ndcg.get(cell.split("/")[0])
        if t:
            row["nDCG@10 / teacher"] = (
                f"{statistics.fmean(r['test']['nDCG@10'] for r in runs) / t:.3f}"
            )
        row["dev nDCG@10"] = fmt([r["dev"]["nDCG@10"] for r in runs])
        row["train s/run"] = f"{statistics.fmean(r['train_seconds'] for r in runs):.0f}"
        row["eval s/run"] = f"{statistics.fmean(r['eval_seconds'] for r in runs):.0f}"
        rows.append(row)
    return rows


def _groups(records: dict) -> list[str]:
    """The (teacher, init) groups that have a core method cell, e.g. 'de/teacher-init'."""
    return sorted({c.rsplit("/", 1)[0] for c in records if c.rsplit("/", 1)[1] in METHOD_ORDER})


def _paired_row(records: dict, group: str, a: str, b: str) -> dict | None:
    """Cell a minus cell b of one group on the seeds both have (same batches, same init)."""
    ra, rb = records.get(f"{group}/{a}", {}), records.get(f"{group}/{b}", {})
    seeds = sorted(set(ra) & set(rb))
    if not seeds:
        return None
    row = {"group": group, "difference": f"{a} − {b}", "seeds": len(seeds)}
    for split in ("test", "dev"):
        diffs = [ra[s][split]["nDCG@10"] - rb[s][split]["nDCG@10"] for s in seeds]
        row[f"{split} ΔnDCG@10"] = fmt(diffs)
        row[f"{split} seeds > 0"] = f"{sum(d > 0 for d in diffs)}/{len(diffs)}"
    return row


def paired_rows(records: dict) -> list[dict]:
    """Per group: the core methods against each other."""
    core = (("lead", "response"), ("response", "contrastive"), ("lead", "contrastive"))
    rows = (_paired_row(records, g, a, b) for g in _groups(records) for a, b in core)
    return [r for r in rows if r]


def ablation_paired_rows(records: dict) -> list[dict]:
    """Per group: every other cell (a LEAD variant) against the group's response KD and LEAD."""
    rows = []
    for group in _groups(records):
        variants = sorted(
            c.rsplit("/", 1)[1]
            for c in records
            if c.rsplit("/", 1)[0] == group and c.rsplit("/", 1)[1] not in METHOD_ORDER
        )
        rows += [
            _paired_row(records, group, v, base) for v in variants for base in ("response", "lead")
        ]
    return [r for r in rows if r]


LOSS_KEYS = ("loss_contrastive", "loss_response", "loss_layer")


def cell_metrics(out: Path, cell: str) -> list[list[dict]]:
    """Every seed's training log (metrics.jsonl) of `cell`, in seed order; empty logs left out."""
    from lead_ray.distill.metrics_log import read_metrics

    runs = (
        read_metrics(f) for f in sorted((out / "cells" / cell).glob("seed-*/train/metrics.jsonl"))
    )
    return [r for r in runs if r]


def loss_rows(out: Path, cells: list[str], last: int = 30) -> list[dict]:
    """What each loss term had come down to: means over the first and the last `last` optimizer
    steps of every seed's metrics.jsonl, and the layer KL by *student* block (a block's KL is
    averaged over whichever teacher layers it was paired with)."""
    rows = []
    for cell in cells:
        runs = cell_metrics(out, cell)
        if not runs:
            continue
        for label, pick in (("first", lambda rs: rs[:last]), ("last", lambda rs: rs[-last:])):
            window = [r for rs in runs for r in pick(rs)]
            row = {"cell": cell, "seeds": len(runs), "steps": f"{label} {last}"}
            for key in LOSS_KEYS:
                row[key.removeprefix("loss_")] = (
                    f"{statistics.fmean(r.get(key, 0.0) for r in window):.3f}"
                )
            by_block: dict[int, list[float]] = defaultdict(list)
            for r in window:
                for pair, kl in zip(r.get("pairs", []), r.get("layer_kl", []), strict=True):
                    by_block[pair[0]].append(kl)
            for block in (0, 1):
                vals = by_block.get(block)
                row[f"KL student block {block}"] = f"{statistics.fmean(vals):.3f}" if vals else "-"
            row["train acc"] = f"{statistics.fmean(r['student_acc'] for r in window):.3f}"
            rows.append(row)
    return rows


def load_alignment(out: Path) -> dict:
    """benchmarks/layer_alignment.py's output in `out` ({} if it has not been run)."""
    path = out / ALIGNMENT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def alignment_rows(data: dict, cells: list[str]) -> list[dict]:
    """The KL matrices, mean over seeds: the student's first block against every teacher layer,
    and the student's final scores against the teacher's."""
    rows = []
    for cell in cells:
        by_seed = list(data.get(cell, {}).values())
        if not by_seed:
            continue
        row = {"cell": cell, "seeds": len(by_seed)}
        for col in by_seed[0]["s0"]:
            if col != "final":
                row[f"block 0 ‖ teacher {col}"] = (
                    f"{statistics.fmean(m['s0'][col] for m in by_seed):.3f}"
                )
        row["final ‖ teacher final"] = (
            f"{statistics.fmean(m['final']['final'] for m in by_seed):.3f}"
        )
        rows.append(row)
    return rows


def teacher_layer_rows(data: dict) -> list[dict]:
    """Every teacher's per-layer score distributions, its final scores last (each frozen kind, and
    a teacher scored another way or trained with its student under its own key); the uniform
    entropy (log of the candidates per query) is what "no signal" reads as."""
    rows = []
    profiles = data.get(ALIGNMENT_TEACHER, {})  # "<kind>" or "<kind>, <variant>"
    for kind, prof in sorted(
        profiles.items(), key=lambda kv: (TEACHER_ORDER.index(kv[0].split(",")[0]), kv[0])
    ):
        n = len(prof["entropy"])
        uniform = f"{math.log(prof['candidates']):.3f}" if prof.get("candidates") else "-"
        names = [f"t{i}" for i in range(n - 1)] + ["final"]
        rows += [
            {
                "teacher": kind,
                "layer": name,
                "softmax entropy": f"{prof['entropy'][i]:.3f}",
                "uniform entropy": uniform,
                "own ranking loss": f"{prof['rank_loss'][i]:.3f}",
                "score std per query": f"{prof['std'][i]:.2f}",
            }
            for i, name in enumerate(names)
        ]
    return rows


# ----------------------------------------------------------------------------- plots


def _save(fig, path: Path) -> None:
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")


METHOD_COLORS = {"contrastive": "#999999", "response": "#4c72b0", "lead": "#dd8452"}
VARIANT_COLOR = "#55a868"
LAYER_PLOT_CELLS = (
    "de/teacher-init/lead",
    "de/random-init/lead",
    "colbert/teacher-init/lead-normlayers",
)


def bar_chart(records: dict, cells: list[str], teacher_ndcg: dict[str, float], path: Path) -> bool:
    """Mean test nDCG@10 per cell; error bars (sample std) only where a cell has 2+ seeds, and the
    seed count under every bar, so a one-seed bar does not read as a certain one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    cells = [c for c in cells if records.get(c)]
    if not cells:
        return False
    means, stds, counts = [], [], []
    for c in cells:
        m, s = mean_std([r["test"]["nDCG@10"] for r in records[c].values()])
        means.append(m)
        stds.append(0.0 if s != s else s)
        counts.append(len(records[c]))
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(cells) + 2), 4.2))
    method = [c.rsplit("/", 1)[1] for c in cells]
    ax.bar(range(len(cells)), means, color=[METHOD_COLORS.get(m, VARIANT_COLOR) for m in method])
    multi = [i for i, n in enumerate(counts) if n > 1]
    ax.errorbar(
        multi,
        [means[i] for i in multi],
        yerr=[stds[i] for i in multi],
        fmt="none",
        ecolor="k",
        capsize=4,
    )
    lo = max(0.0, min(m - s for m, s in zip(means, stds, strict=True)) - 0.05)
    for i, n in enumerate(counts):
        ax.text(
            i,
            lo + 0.005,
            f"n={n}",
            ha="center",
            va="bottom",
            fontsize=6,
            color="white" if n > 1 else "k",
        )
    for kind, value in teacher_ndcg.items():
        if any(c.startswith(kind + "/") for c in cells):
            ax.axhline(value, ls="--", lw=1, color="k")
            ax.text(
                len(cells) - 0.5, value, f" {kind} teacher", va="bottom", ha="right", fontsize=8
            )
    ax.set_xticks(
        range(len(cells)),
        [c.replace("/", "\n", 1) for c in cells],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_ylim(lo, None)
    ax.legend(
        handles=[
            *(Patch(color=v, label=k) for k, v in METHOD_COLORS.items()),
            Patch(color=VARIANT_COLOR, label="LEAD variant"),
        ],
        fontsize=7,
        loc="upper left",
    )
    ax.set(
        ylabel="test nDCG@10 (mean; bars: std over seeds)",
        title="SciFact test: 2-layer students (n = seeds)",
    )
    _save(fig, path)
    plt.close(fig)
    return True


def layer_series(runs: list[list[dict]], key: str, side: int, window: int = 10) -> dict[int, tuple]:
    """Per layer (student layer for side 0, teacher layer for side 1): steps and the mean and std
    over seeds of `key` ("layer_kl" or "layer_weights"), each seed smoothed over the last `window`
    steps on which that layer was paired (a randomly drawn teacher layer is absent on others)."""
    import numpy as np

    steps = max((r["step"] for rs in runs for r in rs), default=0)
    per_layer: dict[int, list] = defaultdict(
        list
    )  # layer -> one [steps] array per seed, NaN = not paired
    for records in runs:
        seed: dict[int, np.ndarray] = {}
        for r in records:
            for pair, v in zip(r.get("pairs", []), r.get(key, []), strict=True):
                seed.setdefault(pair[side], np.full(steps, np.nan))[r["step"] - 1] = v
        for layer, ys in seed.items():
            smooth = np.full(steps, np.nan)
            seen = np.flatnonzero(~np.isnan(ys))
            for j, i in enumerate(seen):
                smooth[i] = ys[seen[max(0, j - window + 1) : j + 1]].mean()
            per_layer[layer].append(smooth)
    out = {}
    for layer, arrays in sorted(per_layer.items()):
        stack = np.vstack(arrays)  # [seeds, steps]
        ok = ~np.isnan(stack).all(axis=0)
        xs = np.arange(1, steps + 1)[ok]
        out[layer] = (xs, np.nanmean(stack[:, ok], axis=0), np.nanstd(stack[:, ok], axis=0))
    return out


def layer_plot(out: Path, cells: tuple[str, ...], path: Path) -> bool:
    """Per-layer KL (by student layer) and re-weighting weights (by teacher layer) over training:
    one row per cell, the mean over its seeds with a +- 1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {c: runs for c in cells if (runs := cell_metrics(out, c))}
    if not found:
        return False
    fig, axes = plt.subplots(
        len(found), 2, figsize=(11, 3.6 * len(found)), squeeze=False, layout="constrained"
    )
    for row, (cell, runs) in zip(axes, found.items(), strict=True):
        for ax, key, side in ((row[0], "layer_kl", 0), (row[1], "layer_weights", 1)):
            for layer, (xs, mean, std) in layer_series(runs, key, side).items():
                (line,) = ax.plot(
                    xs, mean, lw=1.2, label=f"{'student' if side == 0 else 'teacher'} layer {layer}"
                )
                ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
            ax.legend(fontsize=6, ncol=2)
        row[0].set(
            xlabel="optimizer step",
            ylabel="KL(teacher layer || student layer)",
            title=f"{cell} ({len(runs)} seeds): KL by student layer",
        )
        row[1].set(
            xlabel="optimizer step",
            ylabel="weight a_k",
            title=f"{cell}: re-weighting weight by teacher layer",
        )
        for ax in row:
            ax.title.set_fontsize(9)
    _save(fig, path)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------- results.md


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- quality:{name} -->", f"<!-- /quality:{name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + f"\n\n{block}\n"


def setup_block(out: Path) -> str:
    lines = []
    inv = out / "invocations.jsonl"
    for ln in inv.read_text(encoding="utf-8").splitlines() if inv.is_file() else []:
        r = json.loads(ln)
        s = r["start"]
        lines.append(
            f"- `benchmarks/quality.py {' '.join(r['argv'])}`: "
            f"{r['wall_seconds'] / 60:.1f} min wall; "
            f"{s['cpu']}, {s['cores']} cores, torch {s['torch']} ({s['torch_threads']} threads), "
            f"GPU {s['gpu'] or 'none'}; load average at start {s['load'][0]:.1f}, "
            f"at end {r['end']['load'][0]:.1f}"
        )
    return "\n".join(lines) or "(no invocation recorded)"


def write_results(out: Path, docs: Path, plot_cells: tuple[str, ...] = LAYER_PLOT_CELLS) -> Path:
    """Regenerate the tables and plots of docs/results.md from `out`."""
    from quality_grid import all_cells

    out, docs = Path(out), Path(docs)
    records, alignment = load_records(out), load_alignment(out)
    t_rows, t_ndcg = teacher_rows(out)
    order = [c.name for c in all_cells() if not c.warmup]
    main = [c for c in order if c.rsplit("/", 1)[1] in METHOD_ORDER]
    extra = [c for c in order if c not in main]
    student_cols = [
        "cell",
        "seeds",
        *(f"test {m}" for m in METRICS),
        "nDCG@10 / teacher",
        "dev nDCG@10",
        "train s/run",
        "eval s/run",
    ]
    paired_cols = [
        "group",
        "difference",
        "seeds",
        "test ΔnDCG@10",
        "test seeds > 0",
        "dev ΔnDCG@10",
        "dev seeds > 0",
    ]
    blocks = {
        "setup": setup_block(out),
        "teachers": markdown_table(
            t_rows,
            [
                "system",
                "how evaluated",
                "params (M)",
                "dev nDCG@10",
                *(f"test {m}" for m in METRICS),
                "warm-up steps",
                "train s",
            ],
        ),
        "students": markdown_table(student_rows(records, main, t_ndcg), student_cols),
        "paired": markdown_table(paired_rows(records), paired_cols),
        "ablations": (
            markdown_table(rows, student_cols)
            if (rows := student_rows(records, extra, t_ndcg))
            else "(no ablation or further cell has been run into this folder yet)"
        ),
        "ablations-paired": (
            markdown_table(rows, paired_cols)
            if (rows := ablation_paired_rows(records))
            else "(no ablation has been run on the seeds of its group's core cells yet)"
        ),
        "losses": (
            markdown_table(
                rows,
                [
                    "cell",
                    "seeds",
                    "steps",
                    "contrastive",
                    "response",
                    "layer",
                    "KL student block 0",
                    "KL student block 1",
                    "train acc",
                ],
            )
            if (rows := loss_rows(out, [c for c in order if records.get(c)]))
            else "(no training run yet)"
        ),
        "alignment": (
            markdown_table(rows, list(rows[0]))
            if (rows := alignment_rows(alignment, order))
            else "(benchmarks/layer_alignment.py has not been run on this folder)"
        ),
        "teacher-layers": (
            markdown_table(rows, list(rows[0]))
            if (rows := teacher_layer_rows(alignment))
            else "(benchmarks/layer_alignment.py has not been run on this folder)"
        ),
    }
    if bar_chart(records, main + extra, t_ndcg, docs / "results-students.png"):
        blocks["plots"] = "![test nDCG@10 of every student cell](results-students.png)\n"
    if layer_plot(out, plot_cells, docs / "results-layers.png"):
        blocks["plots"] = (
            blocks.get("plots", "") + "\n![per-layer KL and layer weights](results-layers.png)\n"
        )
    target = docs / "results.md"
    text = target.read_text(encoding="utf-8") if target.is_file() else "# SciFact quality results\n"
    for name, body in blocks.items():
        text = replace_block(text, name, body)
    atomic_write_text(target, text)
    return target
