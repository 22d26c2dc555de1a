"""Progress and cancellation helpers shared by every long call."""

from __future__ import annotations

import pytest

from sar_codec.errors import CancelledError
from sar_codec.progress import Steps, report


def test_report_clamps_and_cancels_with_the_callers_sentence():
    seen = []
    report(seen.append, None, 1.5)
    assert seen == [1.0]
    with pytest.raises(CancelledError, match="not finished"):
        report(seen.append, lambda: True, 0.5, "Cancelled; the work was not finished.")
    assert seen == [1.0]  # nothing reported once cancelled


def test_steps_report_fractions_and_stop_when_asked():
    seen, stop = [], []
    steps = Steps(4, seen.append, lambda: bool(stop), "Cancelled; stopped.")
    steps.step()
    steps.partial(0.5)
    assert seen == [0.25, 0.375]
    stop.append(True)
    with pytest.raises(CancelledError, match="stopped"):
        steps.step()
    assert steps.done == 1
