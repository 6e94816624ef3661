"""Run by tests/test_formats.py in a subprocess with PyLate on the path: build a PyLate ColBERT
from an encoder folder, save it as PyLate saves, and score queries against passages with
PyLate's own encoding and MaxSim.

    python pylate_oracle.py ENCODER_FOLDER OUT_FOLDER INPUT_JSON OUTPUT_JSON
"""

import json
import sys

import torch
from pylate import models, scores

encoder, out, inputs, outputs = sys.argv[1:5]
spec = json.loads(open(inputs, encoding="utf-8").read())
torch.manual_seed(0)
model = models.ColBERT(
    model_name_or_path=encoder,
    embedding_size=spec["dim"],
    device="cpu",
    query_length=spec["query_maxlen"],
    document_length=spec["doc_maxlen"],
)
model.save(out)
model = models.ColBERT(model_name_or_path=out, device="cpu")
q = model.encode(spec["queries"], is_query=True, convert_to_tensor=True)
d = model.encode(spec["passages"], is_query=False, convert_to_tensor=True)
# one passage at a time: no padding to mask
result = [[float(scores.colbert_scores(qi[None], dj[None])[0, 0]) for dj in d] for qi in q]
json.dump({"scores": result}, open(outputs, "w", encoding="utf-8"))
