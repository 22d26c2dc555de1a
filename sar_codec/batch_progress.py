"""Where a batch stands after each scene: counts, the coding rate and the time left (:class:`BatchProgress`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .manifest import Row


@dataclass(frozen=True)
class BatchProgress:
    """Where the whole batch stands, passed to ``progress`` after each scene."""

    done: int
    total: int
    ok: int
    failed: int
    skipped: int  # already done and verified by an earlier run
    mpix_per_s: float | None  # pixels of the scenes coded in this run per second of their wall time (None: none yet)
    eta_s: float | None  # from the input bytes left and the bytes per second so far (None: nothing coded yet)
    row: Row  # the manifest row of the scene just finished
    action: str = "compressed"  # what happened to it: compressed, checked, skipped or failed


class Tally:
    """Counts and rates for the progress callback: rates count only the scenes this run coded or checked."""

    def __init__(self, total: int, total_bytes: int):
        self.start = time.monotonic()
        self.total, self.bytes_left = total, total_bytes
        self.done = self.ok = self.failed = self.skipped = 0
        self.pixels = self.bytes_done = 0

    def add(self, action: str, row: Row) -> BatchProgress:
        """Count one finished scene (its action and manifest row) and say where the batch stands."""
        self.done += 1
        self.bytes_left -= row.get("input_bytes") or 0
        self.ok += row["status"] == "ok"
        self.failed += row["status"] != "ok"
        self.skipped += action == "skipped"
        if action in ("compressed", "checked"):  # skipped and failed scenes take no time worth counting
            self.bytes_done += row.get("input_bytes") or 0
        if action == "compressed":
            self.pixels += row.get("pixels") or 0
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.bytes_done / elapsed  # unknown (None) below until this run has coded something
        eta = 0.0 if self.done == self.total else (self.bytes_left / rate if rate > 0 else None)
        return BatchProgress(self.done, self.total, self.ok, self.failed, self.skipped,
                             self.pixels / elapsed / 1e6 if self.pixels else None, eta, row, action)
