"""Progress and cancellation: the ``progress(fraction)`` and ``cancelled()`` callables every long call takes.

The core never draws a progress bar: the CLI wires these callables to one, the QGIS plugin to its feedback
object.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import CancelledError

Progress = Callable[[float], None]
Cancelled = Callable[[], bool]


def report(progress: Progress | None, cancelled: Cancelled | None, fraction: float,
           message: str = "Cancelled; no output was written.") -> None:
    """Stop with CancelledError(``message``) when ``cancelled()`` says so, else report ``fraction`` done."""
    if cancelled is not None and cancelled():
        raise CancelledError(message)
    if progress is not None:
        progress(min(1.0, fraction))


class Steps:
    """Progress over ``total`` equal steps, checking for cancellation at each."""

    def __init__(self, total: int, progress: Progress | None, cancelled: Cancelled | None, message: str):
        self.total, self.done = max(1, total), 0
        self.progress, self.cancelled, self.message = progress, cancelled, message

    def check(self) -> None:
        """Raise CancelledError when the caller asked to stop."""
        report(None, self.cancelled, 0.0, self.message)

    def step(self) -> None:
        """One more step done."""
        self.check()
        self.done += 1
        self.partial(0.0)

    def partial(self, fraction: float) -> None:
        """Report progress inside the current step (``fraction`` of it done)."""
        report(self.progress, None, (self.done + fraction) / self.total)
