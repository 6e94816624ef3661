"""Retrieval models with per-layer scores: the `Retriever` interface (`base`), the registered
kinds (`registry`: dual encoder, ColBERT, cross-encoder), backbones, pure score functions
(`scoring`) and building / saving / loading them (`build`). Importing the package is cheap;
import the submodule you need."""
