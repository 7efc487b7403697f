"""The ordered, retrying queue that every MLflow write of the driver goes through.

Training must never wait on the tracking store, and the store must end complete once it is
back. A write that fails because the store is down stays at the head of the queue and every
later write waits behind it (a trial's metrics after its run exists, the parent's end after its
children's); the head is tried again ``retry_s`` seconds later, on the next event that flushes.

Which errors mean "down" is the store's knowledge (``store.classify``, handed in): this module
imports neither MLflow nor Ray.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

Write = Callable[[], None]
"""One update of the store. It may run again whole after it failed halfway."""


class Failure(Enum):
    """What a failed write says about the store."""

    DOWN = "down"
    """Unreachable or overloaded: the same write succeeds later, so it is kept."""
    REFUSED = "refused"
    """The store answered and said no (a bad request): retrying cannot help, so it is dropped."""


Classify = Callable[[Exception], Failure | None]
"""A failed write's error -> what it says about the store; None: not the store's doing (a bug),
so it is raised to the caller."""


def warn(line: str) -> None:
    """One line on stderr: the store's state is news for the user, never a reason to stop."""
    print(f"dirsearch: mlflow: {line}", file=sys.stderr, flush=True)


class WriteQueue:
    """Writes in submission order; while the store is down they wait, and one outage is reported
    once when it starts and once when everything queued during it is logged."""

    def __init__(self, retry_s: float, classify: Classify) -> None:
        self.retry_s, self.classify = retry_s, classify
        self._writes: deque[Write] = deque()
        self._next_try = 0.0
        self._down = False

    def submit(self, write: Write) -> None:
        """Queue ``write`` behind the others and send what can be sent now."""
        self._writes.append(write)
        self.flush()

    def flush(self, wait_s: float = 0.0) -> int:
        """Send queued writes in order, waiting up to ``wait_s`` seconds for a store that is down
        to come back. Returns how many are still queued."""
        deadline = time.monotonic() + wait_s
        while self._writes:
            now = time.monotonic()
            if now < self._next_try:
                if now >= deadline:
                    return len(self._writes)
                time.sleep(min(self._next_try, deadline) - now)
                continue
            try:
                self._writes[0]()
            except Exception as error:
                failure = self.classify(error)
                if failure is None:
                    raise
                if failure is Failure.REFUSED:
                    warn(f"MLflow refused an update ({str(error)[:200]}); skipped")
                    self._writes.popleft()
                    continue
                self._outage(error)
                if time.monotonic() >= deadline:
                    return len(self._writes)
                continue
            self._writes.popleft()
            if self._down and not self._writes:
                warn("MLflow reachable again; queued updates logged")
                self._down = False
        return 0

    def _outage(self, error: Exception) -> None:
        if not self._down:
            self._down = True
            first = str(error).splitlines()[0][:160]
            warn(
                f"MLflow unreachable ({first}); training goes on, updates are queued and "
                f"retried every {self.retry_s:g} s"
            )
        self._next_try = time.monotonic() + self.retry_s
