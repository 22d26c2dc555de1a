"""Constants and helpers shared by the QGIS tests (imported by name: tests/qgis is on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "sar_codec_qgis"
PROCESSING_PLUGINS = "/usr/share/qgis/python/plugins"  # Debian's qgis package puts Processing here


def cancelling_feedback(after: float = 0.0):
    """A QgsProcessingFeedback that cancels at the first progress report of at least ``after`` percent."""
    from qgis.core import QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.reports = []

    def on_progress(percent: float) -> None:
        feedback.reports.append(percent)
        if percent >= after:
            feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    return feedback
