"""Batch progress: rates and times left count only the scenes this run coded."""

from __future__ import annotations

from sar_codec.batch_progress import Tally
from sar_codec_cli.batch_commands import _print_progress


def test_progress_of_a_resumed_run_has_no_made_up_rate(capsys):
    tally = Tally(3, 300)
    first = tally.add("skipped", {"status": "ok", "input_bytes": 100, "output": "a.sarc", "bpp": 1.0})
    assert (first.mpix_per_s, first.eta_s, first.action) == (None, None, "skipped")
    _print_progress(first)
    line = capsys.readouterr().err
    assert "already done" in line and "MPix/s" not in line and "ETA" not in line
    second = tally.add("compressed", {"status": "ok", "input_bytes": 100, "pixels": 10**6, "output": "b.sarc",
                                      "bpp": 1.0})
    assert second.mpix_per_s > 0 and second.eta_s > 0
    _print_progress(second)
    assert "MPix/s, ETA 0:" in capsys.readouterr().err
    assert tally.add("failed", {"status": "failed", "input_bytes": 100}).eta_s == 0
