"""lead-ray: LEAD distillation for dense retrieval, from one laptop to a Ray cluster.

Importing the package is cheap: no torch, ray or faiss is imported here.
"""

__version__ = "0.1.0"
