"""Evaluation: published DL19 numbers, hand-computed values, trec_eval tie-breaking, the CLI.

The known answers are nDCG@10 values of six published systems on TREC DL 2019, re-scored with
NIST's qrels (shared/data/msmarco-dl19-pool/README): trec_eval ranks by score and breaks ties by
doc id, descending; ranking RepLLaMA by its rank column instead gives 0.7439.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import shared_data
from typer.testing import CliRunner

from lead_ray.data.runs import read_run, write_trec_run
from lead_ray.evaluation.metrics import evaluate, format_table, parse_metrics

DL19_NDCG10 = {
    "BM25": 0.5058,
    "BM25_RM3": 0.5216,
    "D_BERT_KD_TASB": 0.7210,
    "OPEN_AI_ADA2": 0.7035,
    "SPLADE_P_P_ENSEMBLE_DISTIL": 0.7308,
    "REP_LLAMA": 0.7384,
}


@pytest.mark.parametrize("system", sorted(DL19_NDCG10))
def test_published_dl19_ndcg10(system):
    pool = shared_data("msmarco-dl19-pool")
    # AP(rel=2) first: trec_eval then runs nDCG at relevance level 2, which must not change it
    metrics = ["AP(rel=2)", "nDCG@10", "RR@10"]
    result = evaluate(pool / "runs" / f"{system}.trec", pool / "qrels" / "test.tsv", metrics)
    assert round(result["aggregate"]["nDCG@10"], 4) == DL19_NDCG10[system]
    assert result["queries"] == 43 and result["missing"] == 0


def test_ties_follow_trec_eval_not_the_rank_column(tmp_path):
    pool = shared_data("msmarco-dl19-pool")
    trec = (pool / "runs" / "REP_LLAMA.trec").read_text().splitlines()
    # The same run as an MS MARCO file (qid pid rank): ranked by its rank column.
    msmarco = tmp_path / "rep_llama.tsv"
    msmarco.write_text(
        "".join(f"{f[0]}\t{f[2]}\t{f[3]}\n" for f in (line.split() for line in trec))
    )
    by_rank = evaluate(msmarco, pool / "qrels" / "test.tsv", ["nDCG@10"])["aggregate"]["nDCG@10"]
    assert round(by_rank, 4) == 0.7439
    # TREC qrels file with the same judgements: same value as the BEIR file
    topics = shared_data("msmarco-topics-qrels")
    trec_qrels = evaluate(
        pool / "runs" / "REP_LLAMA.trec", topics / "qrels.dl19-passage.txt", ["nDCG@10"]
    )
    assert round(trec_qrels["aggregate"]["nDCG@10"], 4) == 0.7384


def test_written_runs_evaluate_like_the_run_in_memory(tmp_path):
    pool = shared_data("msmarco-dl19-pool")
    run = read_run(pool / "runs" / "REP_LLAMA.trec")
    write_trec_run(tmp_path / "copy.trec", run, tag="copy")
    metrics = ["nDCG@10", "RR@10", "AP(rel=2)", "R(rel=2)@100"]
    qrels = pool / "qrels" / "test.tsv"
    assert evaluate(tmp_path / "copy.trec", qrels, metrics) == evaluate(run, qrels, metrics)


# q1 ranks d3 (grade 0), d1 (1), d2 (3), d6 (unjudged), d4 (2); d5 (1) is never retrieved.
# q2's two results tie: trec_eval puts d8 (higher doc id) first, so relevant d7 is at rank 2.
# q3 is judged but missing from the run (scores 0); qX has no judgements (ignored).
QRELS = {"q1": {"d1": 1, "d2": 3, "d3": 0, "d4": 2, "d5": 1}, "q2": {"d7": 2}, "q3": {"d9": 2}}
RUN = {
    "q1": [("d3", 0.9), ("d1", 0.8), ("d2", 0.7), ("d6", 0.6), ("d4", 0.5)],
    "q2": [("d7", 2.0), ("d8", 2.0)],
    "qX": [("d1", 1.0)],
}
L2 = math.log2
Q1_NDCG = (1 / L2(3) + 3 / L2(4) + 2 / L2(6)) / (3 + 2 / L2(3) + 1 / L2(4) + 1 / L2(5))
Q2_NDCG = (2 / L2(3)) / 2
HAND = {  # means over the 3 judged queries (q3 contributes 0)
    "RR@10": (1 / 2 + 1 / 2) / 3,
    "RR(rel=2)@10": (1 / 3 + 1 / 2) / 3,
    "RR@1": 0.0,  # ascending tie-breaking would put d7 first in q2 and give 1/3
    "RR(rel=2)@2": (0 + 1 / 2) / 3,
    "nDCG@10": (Q1_NDCG + Q2_NDCG) / 3,
    "AP": ((1 / 2 + 2 / 3 + 3 / 5) / 4 + 1 / 2) / 3,
    "AP(rel=2)": ((1 / 3 + 2 / 5) / 2 + 1 / 2) / 3,
    "R@5": (3 / 4 + 1) / 3,
    "R(rel=2)@5": (1 + 1) / 3,
    "R@1": 0.0,
    "P@5": (3 / 5 + 1 / 5) / 3,
    "P(rel=2)@5": (2 / 5 + 1 / 5) / 3,
}


def test_hand_computed_values():
    result = evaluate(RUN, QRELS, list(HAND))
    assert result["aggregate"] == pytest.approx(HAND, abs=1e-12)
    assert result["per_query"]["RR@10"] == {"q1": 0.5, "q2": 0.5, "q3": 0.0}
    assert result["per_query"]["nDCG@10"] == pytest.approx(
        {"q1": Q1_NDCG, "q2": Q2_NDCG, "q3": 0.0}
    )
    assert (result["queries"], result["missing"], result["unjudged"]) == (3, 1, 1)


def test_trec_dl_maps_binary_measures_to_rel_2():
    result = evaluate(
        RUN, QRELS, ["nDCG@10", "AP", "R@5", "RR@10", "MRR@10", "P@5", "AP(rel=1)"], trec_dl=True
    )
    agg = result["aggregate"]
    assert list(agg) == [
        "nDCG@10",
        "AP(rel=2)",
        "R(rel=2)@5",
        "RR(rel=2)@10",
        "P@5",
        "AP",
    ]  # MRR@10 == RR@10
    for name in ("nDCG@10", "AP(rel=2)", "R(rel=2)@5", "RR(rel=2)@10", "P@5", "AP"):
        assert agg[name] == pytest.approx(HAND[name], abs=1e-12)


def test_metric_names_are_checked():
    with pytest.raises(ValueError, match="unknown metric 'nDGC@10'"):
        parse_metrics(["nDGC@10"])
    assert [str(m) for m in parse_metrics(["MRR@10", "R@100"])] == ["RR@10", "R@100"]


def test_format_table_lists_the_aggregates():
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(format_table(evaluate(RUN, QRELS, ["nDCG@10", "RR@10"]), title="tiny"))
    text = " ".join(console.export_text().split())  # the caption wraps to the table's width
    assert f"{HAND['nDCG@10']:.4f}" in text and "0.3333" in text
    assert "1 missing from the run" in text and "1 run queries without qrels" in text


# ----------------------------------------------------------------------------- CLI


def cli(args: list[str]):
    from lead_ray.cli.main import app

    return CliRunner().invoke(app, args)


def test_cli_evaluate_prints_and_writes_json(tmp_path):
    pool = shared_data("msmarco-dl19-pool")
    out = tmp_path / "eval.json"
    result = cli(
        [
            "evaluate",
            str(pool / "runs" / "BM25.trec"),
            str(pool / "qrels" / "test.tsv"),
            "--metrics",
            "nDCG@10",
            "--metrics",
            "AP",
            "--trec-dl",
            "--json",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    assert "0.5058" in result.output and "AP(rel=2)" in result.output
    saved = json.loads(out.read_text())
    assert round(saved["aggregate"]["nDCG@10"], 4) == 0.5058 and saved["trec_dl"] is True
    assert len(saved["per_query"]["AP(rel=2)"]) == 43


def test_cli_default_metrics(tmp_path):
    from lead_ray.config import EvaluateConfig

    run, qrels = tmp_path / "r.trec", tmp_path / "q.tsv"
    write_trec_run(run, RUN)
    qrels.write_text(
        "".join(f"{q} 0 {d} {g}\n" for q, docs in QRELS.items() for d, g in docs.items())
    )
    result = cli(["evaluate", str(run), str(qrels)])
    assert result.exit_code == 0, result.output
    assert all(str(m) in result.output for m in parse_metrics(EvaluateConfig().metrics))


@pytest.mark.parametrize("case", ["bad_run", "missing_qrels", "bad_metric"])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, case):
    run, qrels = tmp_path / "r.trec", tmp_path / "q.tsv"
    run.write_text(
        "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 high t\n" if case == "bad_run" else "q1 Q0 d1 1 0.5 t\n"
    )
    if case != "missing_qrels":
        qrels.write_text("q1 0 d1 1\n")
    args = ["evaluate", str(run), str(qrels)] + (
        ["--metrics", "nDCG@1O"] if case == "bad_metric" else []
    )
    result = cli(args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    expected = {
        "bad_run": f"{run}:2: score: expected a number, got 'high'",
        "missing_qrels": f"{qrels}: file not found",
        "bad_metric": "unknown metric 'nDCG@1O'",
    }[case]
    assert expected in lines[0]
