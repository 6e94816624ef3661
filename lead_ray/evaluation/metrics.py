"""Score a run against qrels with trec_eval semantics: ir_measures on its pytrec_eval backend.

This module has no model or benchmark knowledge: given a run and qrels it scores, nothing more.
Conventions (those of trec_eval, which pytrec_eval embeds):
- a query's results are ranked by score; ties are broken by doc id, descending (strcmp order),
  whatever the rank column says;
- nDCG uses the grades as linear gains; AP, RR, R and P count grade >= `rel` (default 1) as
  relevant: `AP(rel=2)`, `R(rel=2)@1000`, `RR(rel=2)@10` name the TREC DL forms;
- the mean runs over every query of the qrels: a query the run misses scores 0 (trec_eval -c);
  run queries without qrels are ignored.
`RR@k` is MS MARCO's MRR@k. ir_measures would send it to its MS MARCO provider, which breaks
ties by ascending doc id; here it is trec_eval's `recip_rank` on each query's top k instead, so
every metric sees the same ranking.

>>> run = {"q1": [("d1", 3.0), ("d2", 2.0), ("d3", 1.0)]}
>>> qrels = {"q1": {"d2": 1, "d3": 2}}
>>> evaluate(run, qrels, ["RR@10", "AP(rel=2)", "R@2"])["aggregate"]
{'RR@10': 0.5, 'AP(rel=2)': 0.3333333333333333, 'R@2': 0.5}
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from typing import Any

from lead_ray.data.errors import DataError
from lead_ray.data.qrels import Qrels, read_qrels
from lead_ray.data.runs import Run, run_from_path

_TREC_DL_REL = 2
_TREC_DL_MEASURES = ("AP", "R", "RR")  # binary measures that count grade >= 2 under TREC DL


def parse_metrics(names: Sequence[str], trec_dl: bool = False) -> list[Any]:
    """ir_measures measures for metric names (`nDCG@10`, `RR@10`, `R@100`, `AP(rel=2)`, ...).

    Args:
        trec_dl: give AP, R@k and RR@k without an explicit `rel` the TREC DL form `rel=2`.

    Raises:
        ValueError: an unknown metric or parameter, naming it.
    """
    import ir_measures

    measures = []
    for name in names:
        try:
            measure = ir_measures.parse_measure(name)
            measure.validate_params()
        except (NameError, ValueError, TypeError, SyntaxError) as err:
            raise ValueError(
                f"unknown metric {name!r} ({err}); examples: nDCG@10, RR@10, R@100, AP, "
                f"AP(rel=2), P@10"
            ) from None
        if trec_dl and measure.NAME in _TREC_DL_MEASURES and "rel" not in measure.params:
            measure = measure(rel=_TREC_DL_REL)
        if measure not in measures:
            measures.append(measure)
    if not measures:
        raise ValueError("no metrics given")
    return measures


def _trec_key(pair: tuple[str, float]) -> tuple[float, str]:
    return pair[1], pair[0]  # trec_eval's order, descending: score, then doc id


def _as_scores(run: Run) -> dict[str, dict[str, float]]:
    out = {}
    for qid, ranked in run.items():
        scores = {str(d): float(s) for d, s in ranked}
        if len(scores) != len(ranked):
            raise DataError("run", f"query {qid!r} lists a document twice")
        out[str(qid)] = scores
    return out


def _per_query(
    measures: list[Any], scores: dict[str, dict[str, float]], qrels: Qrels
) -> dict[Any, dict[str, float]]:
    """measure -> {query_id: value}; trec_eval sees the run once for all measures it supports."""
    import ir_measures

    trec = ir_measures.pytrec_eval
    out: dict[Any, dict[str, float]] = {m: {} for m in measures}
    rr_cut = [
        m for m in measures if m.NAME == "RR" and "cutoff" in m.params and not m["judged_only"]
    ]
    native = [m for m in measures if m not in rr_cut and trec.supports(m)]
    other = [m for m in measures if m not in rr_cut and m not in native]
    if native:
        for metric in trec.iter_calc(native, qrels, scores):
            out[metric.measure][metric.query_id] = float(metric.value)
    for measure in rr_cut:
        # RR@k = trec_eval's recip_rank over the top k in trec_eval's own order.
        k = measure["cutoff"]
        base = ir_measures.RR(**{p: v for p, v in measure.params.items() if p != "cutoff"})
        top = {q: dict(heapq.nlargest(k, d.items(), key=_trec_key)) for q, d in scores.items()}
        for metric in trec.iter_calc([base], qrels, top):
            out[measure][metric.query_id] = float(metric.value)
    if other:  # measures trec_eval lacks: ir_measures picks another provider
        for metric in ir_measures.iter_calc(other, qrels, scores):
            out[metric.measure][metric.query_id] = float(metric.value)
    return out


def evaluate(
    run: Run | str | os.PathLike,
    qrels: Qrels | str | os.PathLike,
    metrics: Sequence[str],
    trec_dl: bool = False,
) -> dict[str, Any]:
    """Aggregate and per-query values of `metrics` for a run (or run file) and qrels (or file).

    Returns:
        {"aggregate": {metric: mean}, "per_query": {metric: {query_id: value}},
         "queries": judged queries averaged over, "missing": judged queries the run lacks,
         "unjudged": run queries without qrels (ignored)}. Metric names are canonical
        (`MRR@10` -> `RR@10`; with `trec_dl`, `AP` -> `AP(rel=2)`).
    """
    measures = parse_metrics(metrics, trec_dl)
    run = run_from_path(run)
    if not isinstance(qrels, dict):
        qrels = read_qrels(qrels)
    if not qrels:
        raise DataError("qrels", "no judgements")
    scores = _as_scores(run)
    per_query: dict[str, dict[str, float]] = {}
    for measure, values in _per_query(measures, scores, qrels).items():
        per_query[str(measure)] = {q: values.get(q, 0.0) for q in qrels}
    aggregate = {name: sum(v.values()) / len(v) for name, v in per_query.items()}
    return {
        "aggregate": aggregate,
        "per_query": per_query,
        "queries": len(qrels),
        "missing": sum(q not in scores for q in qrels),
        "unjudged": sum(q not in qrels for q in scores),
    }


def format_table(results: dict[str, Any], title: str | None = None):
    """A rich `Table` of the aggregate values (4 decimals), with the query counts as caption."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in results["aggregate"].items():
        table.add_row(name, f"{value:.4f}")
    notes = [f"{results['queries']} judged queries"]
    if results.get("missing"):
        notes.append(f"{results['missing']} missing from the run (scored 0)")
    if results.get("unjudged"):
        notes.append(f"{results['unjudged']} run queries without qrels (ignored)")
    table.caption = "; ".join(notes)
    return table
