"""Run by tests/test_formats.py in a subprocess with colbert-ai on the path: build a ColBERT with
colbert-ai from an encoder folder, save it as colbert-ai saves, and score queries against
passages with colbert-ai's own tokenizers, encoders and MaxSim.

    python colbert_ai_oracle.py ENCODER_FOLDER OUT_FOLDER INPUT_JSON OUTPUT_JSON
"""

import json
import sys

import torch
from colbert.infra import ColBERTConfig
from colbert.modeling.checkpoint import Checkpoint
from colbert.modeling.colbert import ColBERT, colbert_score

encoder, out, inputs, outputs = sys.argv[1:5]
spec = json.loads(open(inputs, encoding="utf-8").read())
config = ColBERTConfig(
    checkpoint=encoder,
    dim=spec["dim"],
    query_maxlen=spec["query_maxlen"],
    doc_maxlen=spec["doc_maxlen"],
    amp=False,
)
torch.manual_seed(0)
ColBERT(name=encoder, colbert_config=config).save(out)
ckpt = Checkpoint(out, colbert_config=ColBERTConfig(amp=False)).eval()
with torch.no_grad():
    Q = ckpt.query(*ckpt.query_tokenizer.tensorize(spec["queries"]))
    D, mask = ckpt.doc(*ckpt.doc_tokenizer.tensorize(spec["passages"]), keep_dims="return_mask")
    scores = [colbert_score(Q[i : i + 1], D, mask).tolist() for i in range(len(Q))]
json.dump({"scores": scores}, open(outputs, "w", encoding="utf-8"))
