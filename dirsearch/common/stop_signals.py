"""SIGTERM does what Ctrl-C does.

``kill``, ``timeout`` and SLURM at a job's time limit stop a process with SIGTERM, not SIGINT.
Python's default is to die at once (no checkpoint saved, no resume hint), and Ray replaces
that with handlers of its own (``ray.init``: exit; a local node: kill its processes, then
exit), which leave the driver's core worker printing pages of C++ stack dumps. Routed to the
SIGINT handler of the moment instead, SIGTERM stops ``run``, ``resume`` and ``train`` the way
Ctrl-C does: Ray Tune's handler while a Tuner runs (one last save of the experiment state),
``KeyboardInterrupt`` otherwise, and the verb's own message with the command that continues.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def sigterm_as_ctrl_c() -> None:
    """Install the handler (again after ``ray.init``, which installs its own). Signal handlers
    belong to the main thread: elsewhere this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored (a background job of a script) or Python's default unavailable
        raise KeyboardInterrupt
