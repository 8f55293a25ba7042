"""Evaluation: retrieval metrics, ranking, embedding, protocols and the paper's tables.

Only the pure metric functions are imported here; the rest (embedding, evaluator, tables) is
imported from its module where used.
"""

from geolink.evaluate.metrics import chance_metrics, meter_accuracy, retrieval_metrics, sdm_at_k

__all__ = ["chance_metrics", "meter_accuracy", "retrieval_metrics", "sdm_at_k"]
