"""The batch manifest ``OUT_DIR/manifest.jsonl``: one JSON row per scene, kept as an append-only journal.

Each finished scene's row is appended and fsynced as it arrives; a torn last line left by a killed client is
ignored; the file is rewritten with one row per scene, atomically, when a run opens and closes it. A row's
fields are those of :func:`failed_row` (a scene that succeeded fills in the rest).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

from .archive import SceneJob, input_bytes
from .files import write_text_atomic

MANIFEST_NAME = "manifest.jsonl"

Row = dict


def read_manifest(path: str | os.PathLike) -> dict[str, Row]:
    """Rows of a manifest by input, the last row of an input winning; unreadable (torn) lines are ignored."""
    rows: dict[str, Row] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("input"), str):
                    rows[row["input"]] = row
    except FileNotFoundError:
        pass
    return rows


class Manifest:
    """The journal: loaded and rewritten (one row per scene) on open, appended per scene, rewritten on close."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = read_manifest(path)
        self._rewrite()  # drops a torn last line before anything is appended after it

    def record(self, row: Row) -> None:
        """Append one scene's row, fsynced, so that a killed client loses no finished scene."""
        self.rows[row["input"]] = row
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(row, allow_nan=False) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    def close(self) -> None:
        """Rewrite the file with one row per scene."""
        self._rewrite()

    def _rewrite(self) -> None:
        write_text_atomic(self.path, "".join(json.dumps(self.rows[key], allow_nan=False) + "\n"
                                             for key in sorted(self.rows)))


def now_iso() -> str:
    """The time a row is finished, in UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def base_row(job: SceneJob) -> Row:
    """Every field of a scene's row, as for a scene that has not succeeded (yet)."""
    return {"input": job.key, "output": job.output, "status": "failed", "reason": "",
            "input_bytes": input_bytes(job.inputs), "output_bytes": None, "ratio": None, "bpp": None,
            "psnr": None, "seconds": None, "sha256": None, "model": None, "quality": None, "pixels": None,
            "reproducible": None, "allocation": None, "asked_quality": None, "finished": None}


def failed_row(job: SceneJob, reason: str, seconds: float | None = None) -> Row:
    """The manifest row of a scene that failed, with its one-sentence reason."""
    return {**base_row(job), "reason": reason, "seconds": seconds, "finished": now_iso()}
