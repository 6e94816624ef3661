"""The stage graph, the run layout and the dispatch that runs a stage here or on Ray; the
pipeline."""
