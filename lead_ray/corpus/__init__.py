"""The corpus flow: encode into embedding shards, index them with FAISS, search, map index ids to
documents; the size planner."""
