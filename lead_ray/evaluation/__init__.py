"""Metrics (ir-measures), re-ranking a run with any model, and the run card."""
