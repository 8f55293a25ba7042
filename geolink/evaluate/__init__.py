"""Evaluation: retrieval metrics, ranking, embedding, protocols and the paper's tables.

The pure metric functions are available from here, imported on first use (they need torch; the
step's config, ``geolink.evaluate.config``, does not, so the CLI can build its parser without
it). The rest (embedding, evaluator, tables) is imported from its module where used.
"""

from typing import Any

__all__ = ["chance_metrics", "meter_accuracy", "retrieval_metrics", "sdm_at_k"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from geolink.evaluate import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'geolink.evaluate' has no attribute '{name}'")
