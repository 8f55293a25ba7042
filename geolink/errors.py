"""User-facing errors.

Raise :class:`GeoLinkError` (or a subclass) for anything the user can fix: a wrong path, a
malformed file, an unknown config key. The CLI prints the message without a traceback and exits
with status 2. Messages name the file or key and say what was expected.
"""


class GeoLinkError(Exception):
    """An error caused by user input, printed by the CLI without a traceback."""


class ConfigError(GeoLinkError):
    """Unknown or ill-typed configuration key or value."""


class DataError(GeoLinkError):
    """A dataset root, layout, or file is missing or malformed."""


class MissingDependencyError(GeoLinkError):
    """An optional dependency is not installed; the message carries the install hint."""


def check_finite(embeddings, what: str):
    """Return ``embeddings`` (a numpy array or torch tensor) if every value is finite, else raise
    :class:`DataError` naming ``what`` (a NaN/Inf model must not rank, index or export)."""
    import numpy as np

    values = embeddings.detach().cpu().numpy() if hasattr(embeddings, "detach") else embeddings
    values = np.asarray(values)
    bad = int(values.size - np.isfinite(values).sum())
    if bad:
        rows = (
            int((~np.isfinite(values.reshape(len(values), -1))).any(1).sum()) if values.ndim else 1
        )
        raise DataError(
            f"{what}: {bad} non-finite value(s) (NaN/Inf) in {rows} embedding(s); the model's "
            "weights or the input images are broken"
        )
    return embeddings
