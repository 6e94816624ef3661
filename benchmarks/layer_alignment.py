"""How closely each trained SciFact student's blocks match each teacher layer (a "why" diagnostic).

For every finished student run of the quality grid (`benchmarks/quality.py --out DIR`), this
scores fixed batches with the trained student and the frozen teacher and measures
KL(P_teacher_layer || P_student_block) for every (student block, teacher layer) pair, plus the
teacher's final scores (the response-KD target), with the run's own temperatures (LEAD code: the
temperature divides the teacher side only). It answers questions the final nDCG cannot: does
response KD alone already align the student's inner block with the teacher's layers (then a layer
term has little left to teach), and does LEAD's layer term pull the last block away from the
teacher's final scores?

The batches are training batches (the mined SciFact train examples, drawn with seed 0, the same
batches for every run), so this measures what the objectives achieved, not generalisation.

    .venv/bin/python benchmarks/layer_alignment.py --out runs/quality --batches 16

writes DIR/layer_alignment.json ({cell: {seed: {"s<block>": {"t<layer>"|"final": kl}}}}, and under
"_teacher" each teacher kind's per-layer softmax entropy, own ranking loss and score spread), which
`benchmarks/quality.py --report` turns into a table.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

import torch
from quality_report import ALIGNMENT_FILE as FILE  # the report reads what this writes
from quality_report import ALIGNMENT_TEACHER as TEACHER

from lead_ray.config import load_config
from lead_ray.distill.losses import kl_divergence, layer_ranking_loss
from lead_ray.storage import atomic_write_text


def alignment_matrix(
    student_final: torch.Tensor,
    student_layers: torch.Tensor,
    teacher_final: torch.Tensor,
    teacher_layers: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """KL(teacher || student) for every student block against every teacher layer and the final.

    student_final [B, N]; student_layers [Ls, B, N]; teacher_final [B, N]; teacher_layers [Lt, B, N]
    -> [Ls + 1, Lt + 1]: row s < Ls is student block s, row Ls the student's final scores; column
    t < Lt is teacher layer t, column Lt the teacher's final scores.
    """
    student = torch.cat([student_layers, student_final[None]])  # [Ls+1, B, N]
    teacher = torch.cat([teacher_layers, teacher_final[None]])  # [Lt+1, B, N]
    return kl_divergence(teacher[None], student[:, None], temperature)  # [Ls+1, Lt+1]


def teacher_profile(
    layers: torch.Tensor, labels: torch.Tensor, temperature: float
) -> dict[str, torch.Tensor]:
    """Per teacher layer, what its score distribution looks like to the losses.

    layers [L, B, N] (the final scores may be stacked as one more layer), labels [B] -> each [L]:
      entropy:   mean softmax entropy at `temperature` (log N = uniform, no signal)
      rank_loss: the layer's own cross-entropy of the positive (what the re-weighting reads)
      std:       mean per-query standard deviation of the raw scores (the layer's scale)
    """
    log_p = torch.log_softmax(layers.float() / temperature, dim=-1)  # [L, B, N]
    entropy = -(log_p.exp() * log_p).sum(-1).mean(-1)
    return {
        "entropy": entropy,
        "rank_loss": layer_ranking_loss(layers, labels),
        "std": layers.float().std(-1).mean(-1),
    }


def run_alignment(out: Path, run: Path, batches: int, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """The mean alignment matrix of the student trained in `run` (a cell's train/ folder), and the
    teacher's per-layer profile (`teacher_profile`, final scores last) on the same batches."""
    from lead_ray.distill.lead_model import build_lead_model
    from lead_ray.stages.layout import RunLayout
    from lead_ray.stages.run import Run

    settings = [f"student.model={{path: {run / 'student'}}}", f"train.seed={seed}"]
    if (
        run / "teacher"
    ).is_dir():  # trained with the student: align with that teacher, not its start
        settings.append(f"teacher.model={{path: {run / 'teacher'}}}")
    cfg = load_config(run / "config.yaml", settings)  # names the mined examples it trained on
    data = Run(
        cfg, RunLayout(run.parent, corpus_dir=out / "corpus"), progress=False
    ).training_data()
    model = build_lead_model(cfg).eval()  # the live frozen teacher (what its cache holds)
    ls, lt = model.student.num_layers, model.teacher.num_layers
    total = torch.zeros(ls + 1, lt + 1)
    profile = {k: torch.zeros(lt + 1) for k in ("entropy", "rank_loss", "std")}
    with torch.no_grad():
        for step in range(batches):
            batch = data.batch(step, cfg.train.batch_size)
            # final [B, M], layers [Ls | Lt, B, M] over the candidates training scores
            s, t, labels = model.scores(batch, list(range(ls)), list(range(lt)))
            total += alignment_matrix(s.final, s.layers, t.final, t.layers, cfg.lead.temperature)
            for k, v in teacher_profile(
                torch.cat([t.layers, t.final[None]]), labels, cfg.lead.temperature
            ).items():
                profile[k] += v
    summary = {k: [round(float(x) / batches, 4) for x in v] for k, v in profile.items()}
    return total / batches, {**summary, "candidates": t.final.shape[-1]}


def teacher_key(kind: str, run: Path, seed: int) -> str:
    """Whose per-layer profile a run's batches measure: the frozen teacher of its kind, unless the
    run scores the teacher's layers another way or trained the teacher along with the student."""
    cfg = load_config(run / "config.yaml")
    if (run / "teacher").is_dir():
        return f"{kind}, trained with the student (seed {seed})"
    if cfg.teacher.kind == "colbert" and cfg.teacher.colbert.normalize_layers:
        return f"{kind}, normalised layer states"
    return kind


def as_dict(matrix: torch.Tensor) -> dict[str, dict[str, float]]:
    ls, lt = matrix.shape[0] - 1, matrix.shape[1] - 1
    rows = [f"s{i}" for i in range(ls)] + ["final"]
    cols = [f"t{j}" for j in range(lt)] + ["final"]
    return {
        r: {c: round(float(matrix[i, j]), 5) for j, c in enumerate(cols)}
        for i, r in enumerate(rows)
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/quality"))
    p.add_argument(
        "--cells",
        nargs="*",
        default=["*"],
        help="glob patterns of cell names, matched as benchmarks/quality.py matches them "
        "('*' also spans '/': 'colbert/*' is every ColBERT cell; default: all)",
    )
    p.add_argument("--batches", type=int, default=16)
    args = p.parse_args(argv)
    path = args.out / FILE
    result = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    torch.set_num_threads(1)
    for record in sorted((args.out / "cells").glob("*/*/*/seed-*/record.json")):
        rec = json.loads(record.read_text(encoding="utf-8"))
        if not any(fnmatch.fnmatch(rec["cell"], pattern) for pattern in args.cells):
            continue
        key = (rec["cell"], str(rec["seed"]))
        # one profile per teacher (the same batches for all its cells)
        who = teacher_key(key[0].split("/")[0], record.parent / "train", rec["seed"])
        if key[1] in result.get(key[0], {}) and who in result.get(TEACHER, {}):
            continue
        matrix, profile = run_alignment(args.out, record.parent / "train", args.batches)
        result.setdefault(key[0], {})[key[1]] = as_dict(matrix)
        result.setdefault(TEACHER, {})[who] = profile
        print(f"{key[0]} seed {key[1]}: " + json.dumps(result[key[0]][key[1]]), flush=True)
        atomic_write_text(path, json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
