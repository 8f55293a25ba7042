"""``stages.json``: which steps of a pipeline are done, with their seconds and results."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geolink.errors import ConfigError
from geolink.utils.io import atomic_write_json

logger = logging.getLogger(__name__)


def start_over(out: Path, names: tuple[str, ...]) -> None:
    """Remove a pipeline's outputs ``names`` (files or folders) from ``out``, for --overwrite."""
    import shutil

    for name in names:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    logger.info("%s: previous outputs removed (--overwrite)", out)


class Stages:
    """Runs named stages once; records status and seconds in ``stages.json``. Processes that
    share the folder (a study split into shards) keep each other's records."""

    def __init__(self, out: Path):
        self.path = out / "stages.json"
        self.state: dict[str, Any] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {}
        )

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.done(name):
            logger.info(
                "stage '%s' already done (%.0f s), skipping", name, self.state[name]["seconds"]
            )
            return self.state[name].get("result")
        logger.info("stage '%s' ...", name)
        t0 = time.perf_counter()
        result = fn()
        entry = {"status": "done", "seconds": time.perf_counter() - t0, "result": result}
        # read-modify-write under a lock on the folder (no lock file left over)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.refresh()
            self.state[name] = entry
            atomic_write_json(self.path, self.state)
        finally:
            os.close(fd)  # releases the lock
        return result

    def refresh(self) -> None:
        """Re-read the records (another process may have finished stages)."""
        if self.path.is_file():
            self.state = json.loads(self.path.read_text())

    def done(self, name: str) -> bool:
        return self.state.get(name, {}).get("status") == "done"

    def seconds(self) -> dict[str, float]:
        return {k: v["seconds"] for k, v in self.state.items() if v.get("status") == "done"}

    def wait_for(self, names: list[str], timeout_s: float = 7200.0) -> None:
        """Block until another process has finished ``names``."""
        t0 = time.monotonic()
        while not all(self.done(n) for n in names):
            if time.monotonic() - t0 > timeout_s:
                raise ConfigError(f"waited {timeout_s:.0f} s for shard 0 to finish {names}")
            time.sleep(5)
            self.refresh()
