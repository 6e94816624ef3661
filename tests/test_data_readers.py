"""Readers for corpora, queries, qrels, BEIR folders and run files, on real files and every format.

Oracles: the same content written in every supported format reads back identically; real files
are compared with a plain parse of their lines; the same DL19 judgements in BEIR and TREC form
read the same.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from lead_ray.data.beir import BeirFolder, corpus_file, resolve_path
from lead_ray.data.corpus import Doc, iter_corpus
from lead_ray.data.errors import DataError
from lead_ray.data.qrels import read_qrels
from lead_ray.data.queries import read_queries
from lead_ray.data.runs import read_run, trec_order, write_msmarco_run, write_trec_run
from lead_ray.data.textio import ReadStats
from lead_ray.resources import resource_path

DOCS = [
    Doc("7", "Ünïcode title", "first text, with a comma"),
    Doc("d-2", "", 'second "quoted" text'),
    Doc("10", "Title three", "third text é ü 中文"),
]


def write_lines(path: Path, lines: list[str], gz: bool = False) -> Path:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# ----------------------------------------------------------------------------- corpus


def corpus_in(fmt: str, folder: Path) -> Path:
    if fmt == "beir":
        return write_lines(
            folder / "c.jsonl",
            [json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) for d in DOCS],
        )
    if fmt == "beir.gz":
        return write_lines(
            folder / "c.jsonl.gz",
            [json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) for d in DOCS],
            gz=True,
        )
    if fmt == "pyserini":  # {"id", "contents"}; the title is part of the text there, so none here
        return write_lines(
            folder / "c.jsonl",
            [
                json.dumps(
                    {"id": d.doc_id, "contents": d.text, **({"title": d.title} if d.title else {})}
                )
                for d in DOCS
            ],
        )
    if fmt == "tsv3":
        return write_lines(folder / "c.tsv", [f"{d.doc_id}\t{d.text}\t{d.title}" for d in DOCS])
    if fmt == "tsv3-header":
        return write_lines(
            folder / "c.tsv",
            ["id\ttitle\ttext"] + [f"{d.doc_id}\t{d.title}\t{d.text}" for d in DOCS],
        )
    if fmt == "tsv3.gz":
        return write_lines(
            folder / "c.tsv.gz", [f"{d.doc_id}\t{d.text}\t{d.title}" for d in DOCS], gz=True
        )
    if fmt == "parquet":
        pq.write_table(
            pa.table(
                {
                    "doc_id": [d.doc_id for d in DOCS],
                    "title": [d.title for d in DOCS],
                    "text": [d.text for d in DOCS],
                }
            ),
            folder / "c.parquet",
        )
        return folder / "c.parquet"
    if fmt == "parquet-int-ids":  # `_id` column of integers, null title
        ids = [7, 2, 10]
        pq.write_table(
            pa.table(
                {
                    "_id": ids,
                    "title": [d.title or None for d in DOCS],
                    "text": [d.text for d in DOCS],
                }
            ),
            folder / "c.parquet",
        )
        return folder / "c.parquet"
    raise AssertionError(fmt)


@pytest.mark.parametrize(
    "fmt", ["beir", "beir.gz", "pyserini", "tsv3", "tsv3-header", "tsv3.gz", "parquet"]
)
def test_every_corpus_format_reads_the_same_documents(tmp_path, fmt):
    assert list(iter_corpus(corpus_in(fmt, tmp_path))) == DOCS


def test_integer_ids_become_strings_and_a_null_title_is_empty(tmp_path):
    docs = list(iter_corpus(corpus_in("parquet-int-ids", tmp_path)))
    assert [d.doc_id for d in docs] == ["7", "2", "10"]
    assert [d.title for d in docs] == [d.title for d in DOCS]
    jsonl = write_lines(tmp_path / "ints.jsonl", ['{"_id": 42, "text": "t"}'])
    assert list(iter_corpus(jsonl)) == [Doc("42", "", "t")]


def test_msmarco_collection_tsv_two_columns(tmp_path):
    path = write_lines(tmp_path / "collection.tsv", [f"{d.doc_id}\t{d.text}" for d in DOCS])
    assert list(iter_corpus(path)) == [Doc(d.doc_id, "", d.text) for d in DOCS]


MSMARCO_DOCS = [  # the published layouts of msmarco-docs.tsv / .trec (docid, url, title, body)
    ("D1555982", "https://answers.yahoo.com/question/index?qid=20071007114826AAwCFvR",
     "The hot glowing surfaces of stars emit energy in the form of",
     "Science & Mathematics Physics The hot glowing surfaces of stars emit energy ..."),
    ("D301595", "http://childparenting.about.com/od/physicalemotionalgrowth/tp/x.htm", "",
     "Developmental Milestones and Your 8-Year-Old Child School-Age Kids Growth ..."),
]  # fmt: skip


@pytest.mark.parametrize("gz", [False, True])
def test_msmarco_document_files_as_published(tmp_path, gz):
    """MS MARCO documents in both published forms read as (docid, title, body), the url
    dropped; a blank title line in the TREC form stays an empty title."""
    z = ".gz" if gz else ""
    tsv = write_lines(tmp_path / f"msmarco-docs.tsv{z}", ["\t".join(d) for d in MSMARCO_DOCS], gz)
    blocks = [["<DOC>", f"<DOCNO>{d[0]}</DOCNO>", "<TEXT>", *d[1:], "</TEXT>", "</DOC>"]
              for d in MSMARCO_DOCS]  # fmt: skip
    trec = write_lines(tmp_path / f"msmarco-docs.trec{z}", [x for b in blocks for x in b], gz)
    want = [Doc(docid, title, body) for docid, _, title, body in MSMARCO_DOCS]
    assert list(iter_corpus(tsv)) == want
    assert list(iter_corpus(trec)) == want


def test_trec_documents_with_headlines_and_several_text_lines(tmp_path):
    path = write_lines(tmp_path / "robust.txt", [
        "<DOC>", "<DOCNO> FT911-3 </DOCNO>", "<HEADLINE>Markets rally</HEADLINE>", "<TEXT>",
        "Shares rose", "", "on Monday.", "</TEXT>", "</DOC>",
        "<DOC>", "<DOCNO>LA0101-2</DOCNO>", "<TEXT>", "No headline here.", "</TEXT>", "</DOC>",
    ])  # fmt: skip
    assert list(iter_corpus(path)) == [
        Doc("FT911-3", "Markets rally", "Shares rose on Monday."),
        Doc("LA0101-2", "", "No headline here."),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["<DOC>", "<TEXT>", "body", "</TEXT>", "</DOC>"], ":1: DOCNO: empty"),
        (["<DOC>", "<DOCNO>a</DOCNO>", "<TEXT>", "body", "</TEXT>"], ":1: <DOC> without </DOC>"),
        (["<DOC>", "<DOCNO>a</DOCNO>", "</DOC>", "stray"], ":4: expected <DOC>, found 'stray'"),
    ],
)
def test_trec_document_errors_name_the_line(tmp_path, lines, message):
    path = write_lines(tmp_path / "docs.trec", [*lines, "<DOC>", "<DOCNO>ok</DOCNO>", "</DOC>"])
    with pytest.raises(DataError) as err:
        list(iter_corpus(path))
    assert str(err.value).startswith(f"{path}{message}")
    stats = ReadStats()
    assert Doc("ok", "", "") in list(iter_corpus(path, on_error="skip", stats=stats))
    assert stats.skipped == 1


def test_a_trec_run_file_is_not_taken_for_documents(tmp_path):
    path = write_lines(tmp_path / "bm25.trec", ["q1 Q0 d1 1 9.5 bm25", "q1 Q0 d2 2 8.0 bm25"])
    assert read_run(path) == {"q1": [("d1", 9.5), ("d2", 8.0)]}
    with pytest.raises(DataError, match="a trecdoc file, expected one of"):
        read_queries(write_lines(tmp_path / "q.trec", ["<DOC>", "<DOCNO>x</DOCNO>", "</DOC>"]))


def test_real_msmarco_collection_sample():
    path = shared_data("msmarco-format-sample") / "full_collection" / "raw.tsv"
    expected = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()]
    docs = list(iter_corpus(path))
    assert len(docs) == 89
    assert [(d.doc_id, d.text) for d in docs] == [(pid, text) for pid, text in expected]


def test_real_scifact_corpus():
    path = shared_data("scifact") / "corpus.jsonl"
    docs = list(iter_corpus(path))
    assert len(docs) == 5183
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert docs[0] == Doc(str(first["_id"]), first["title"], first["text"])
    assert all(isinstance(d.doc_id, str) for d in docs)


# ----------------------------------------------------------------------------- queries


@pytest.mark.parametrize("fmt", ["jsonl", "tsv", "tsv-header", "parquet", "jsonl.gz"])
def test_every_queries_format(tmp_path, fmt):
    queries = {"1048585": "what is paula deen's brother", "q2": "Ünïcode query"}
    if fmt.startswith("jsonl"):
        path = write_lines(
            tmp_path / f"q.{fmt}",
            [json.dumps({"_id": k, "text": v}) for k, v in queries.items()],
            gz=fmt.endswith(".gz"),
        )
    elif fmt == "parquet":
        path = tmp_path / "q.parquet"
        pq.write_table(pa.table({"query_id": list(queries), "text": list(queries.values())}), path)
    else:
        header = ["query_id\ttext"] if fmt == "tsv-header" else []
        path = write_lines(tmp_path / "q.tsv", header + [f"{k}\t{v}" for k, v in queries.items()])
    assert read_queries(path) == queries


def test_real_query_files():
    topics = shared_data("msmarco-topics-qrels")
    dl19 = read_queries(topics / "topics.dl19-passage.txt")
    assert len(dl19) == 43 and dl19["156493"] == "do goldfish grow"
    assert len(read_queries(topics / "topics.msmarco-passage.dev-subset.txt")) == 6980
    assert len(read_queries(topics / "colbert-5k-eval.queries.tsv")) == 5000
    scifact = read_queries(shared_data("scifact") / "queries.jsonl")
    assert len(scifact) == 1109
    # the same 43 DL19 queries as the BEIR-layout pool, same texts
    assert read_queries(shared_data("msmarco-dl19-pool") / "queries.jsonl") == dl19
    # The SPLADE toy file repeats ids: identical repeats are fine, a changed text is an error
    # (or, with on_error="skip", a counted skip that keeps the first text).
    fake = shared_data("msmarco-format-sample") / "dev_queries" / "raw.tsv"
    with pytest.raises(
        DataError,
        match=r"raw\.tsv:9: query_id: query '786786' appears twice with "
        r"different texts \(first at line 1\)",
    ):
        read_queries(fake)
    stats = ReadStats()
    dev = read_queries(fake, on_error="skip", stats=stats)
    assert dev["786786"] == " Androgen receptor define"  # text kept verbatim
    assert len(dev) == 9 and stats.skipped == 1


# ----------------------------------------------------------------------------- qrels


def test_qrels_formats_agree(tmp_path):
    expected = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    rows = [("q1", "d1", 1), ("q1", "d2", 0), ("q2", "d3", 2)]
    beir = write_lines(
        tmp_path / "beir.tsv",
        ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, d, g in rows],
    )
    trec = write_lines(tmp_path / "trec.txt", [f"{q} 0 {d} {g}" for q, d, g in rows])
    trec_tabs = write_lines(tmp_path / "qrels.train.tsv", [f"{q}\t0\t{d}\t{g}" for q, d, g in rows])
    three = write_lines(tmp_path / "three.tsv", [f"{q} {d} {g}" for q, d, g in rows])
    as_json = tmp_path / "qrels.json"
    as_json.write_text(json.dumps(expected))
    for path in (beir, trec, trec_tabs, three, as_json):
        assert read_qrels(path) == expected, path


def test_real_qrels_beir_and_trec_forms_agree():
    beir = read_qrels(shared_data("msmarco-dl19-pool") / "qrels" / "test.tsv")
    trec = read_qrels(shared_data("msmarco-topics-qrels") / "qrels.dl19-passage.txt")
    assert beir == trec
    assert len(trec) == 43 and sum(map(len, trec.values())) == 9260
    grades = [g for docs in trec.values() for g in docs.values()]
    assert {g: grades.count(g) for g in range(4)} == {0: 5158, 1: 1601, 2: 1804, 3: 697}


def test_real_qrels_files():
    topics = shared_data("msmarco-topics-qrels")
    assert len(read_qrels(topics / "qrels.dl20-passage.txt")) == 54  # `qid 0 pid grade`
    dev = read_qrels(topics / "qrels.msmarco-passage.dev-subset.txt")
    assert len(dev) == 6980 and sum(map(len, dev.values())) == 7437
    colbert = read_qrels(topics / "colbert-5k-eval.qrels.tsv")  # tab-separated TREC
    assert len(colbert) == 5000 and sum(map(len, colbert.values())) == 5324
    train = read_qrels(shared_data("scifact") / "qrels" / "train.tsv")
    assert len(train) == 809 and sum(map(len, train.values())) == 919
    fake = read_qrels(shared_data("msmarco-format-sample") / "qrel" / "qrel.json")
    assert fake["2"] == {"69": 1}


# ----------------------------------------------------------------------------- BEIR folders


def test_beir_folder_and_sample_alias():
    scifact = BeirFolder(shared_data("scifact"))
    assert scifact.corpus.name == "corpus.jsonl" and scifact.queries.name == "queries.jsonl"
    assert scifact.splits == ["test", "train"]
    assert scifact.qrels("train").name == "train.tsv"
    with pytest.raises(DataError, match=r"no qrels for split 'dev' \(splits here: test, train\)"):
        scifact.qrels("dev")
    sample = BeirFolder("@sample")
    assert sample.path == resource_path("sample")
    assert resolve_path("@sample/queries.jsonl") == resource_path("sample") / "queries.jsonl"
    assert corpus_file("@sample") == sample.corpus
    assert len(list(iter_corpus("@sample/corpus.jsonl"))) > 0


def test_beir_folder_lists_what_is_missing(tmp_path):
    (tmp_path / "queries.jsonl").write_text('{"_id": "q", "text": "t"}\n')
    with pytest.raises(DataError, match=r"missing corpus\.jsonl \(found: queries\.jsonl\)"):
        BeirFolder(tmp_path)
    (tmp_path / "queries.jsonl").unlink()
    with pytest.raises(DataError, match="missing corpus.jsonl and queries.jsonl"):
        BeirFolder(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        BeirFolder(tmp_path / "nope")


# ----------------------------------------------------------------------------- runs


RUN = {"q1": [("d3", 2.5), ("d1", 1.0), ("d9", 0.1 + 0.2)], "q2": [("d1", -1e-9)]}


def test_trec_run_round_trip_is_exact(tmp_path):
    write_trec_run(tmp_path / "r.trec", RUN, tag="sys")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 d3 1 2.5 sys"
    assert lines[2].split()[4] == repr(0.1 + 0.2)  # exact, so ties and order survive
    assert read_run(tmp_path / "r.trec") == {"q1": trec_order(RUN["q1"]), "q2": RUN["q2"]}


def test_msmarco_run_reads_back_as_ranks(tmp_path):
    write_msmarco_run(tmp_path / "r.tsv", RUN)
    assert (tmp_path / "r.tsv").read_text().splitlines()[:2] == ["q1\td3\t1", "q1\td1\t2"]
    run = read_run(tmp_path / "r.tsv")
    assert [d for d, _ in run["q1"]] == ["d3", "d1", "d9"]  # list order, not doc-id order
    assert [s for _, s in run["q1"]] == [-1.0, -2.0, -3.0]


def test_tevatron_scores_are_not_mistaken_for_ranks(tmp_path):
    # third column 1, 2 for q1 would look like ranks, but q2's 0.5, 7.0 are scores: all scores
    path = write_lines(tmp_path / "tev.txt", ["q1 a 1", "q1 b 2", "q2 c 0.5", "q2 d 7.0"])
    assert read_run(path) == {"q1": [("b", 2.0), ("a", 1.0)], "q2": [("d", 7.0), ("c", 0.5)]}


def test_read_run_orders_ties_like_trec_eval(tmp_path):
    path = write_lines(
        tmp_path / "tie.trec", ["q 0 a 1 1.0 t", "q 0 c 2 1.0 t", "q 0 b 3 1.0 t", "q 0 z 4 0.5 t"]
    )
    assert [d for d, _ in read_run(path)["q"]] == ["c", "b", "a", "z"]


def test_real_run_file():
    run = read_run(shared_data("msmarco-dl19-pool") / "runs" / "BM25.trec")
    assert len(run) == 43 and all(len(r) == 100 for r in run.values())
    assert all(r[i][1] >= r[i + 1][1] for r in run.values() for i in range(len(r) - 1))
