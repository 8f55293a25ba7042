"""Worker processes that do not outlive the command that started them."""

from __future__ import annotations

import os
import threading
import time


def die_with_parent(poll_s: float = 0.5) -> None:
    """Call in a worker process (a pool initializer): the worker exits as soon as its parent is
    gone, e.g. a ``geolink synth`` killed with SIGKILL, whose render workers would otherwise
    keep running (and holding hundreds of MB each) with no one to report to.

    A daemon thread watches the parent pid: when the parent dies the worker is re-parented and
    ``os.getppid()`` changes. (Linux's PR_SET_PDEATHSIG fires when the spawning *thread* ends,
    which for a process pool is not the same as the command ending.)
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(poll_s)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
