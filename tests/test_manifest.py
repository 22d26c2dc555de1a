"""The batch manifest: a journal appended per scene, rewritten one row per scene, its torn last line ignored."""

from __future__ import annotations

from sar_codec.manifest import MANIFEST_NAME, Manifest, read_manifest


def test_manifest_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / MANIFEST_NAME
    path.write_text('{"input": "a", "status": "failed"}\n{"input": "a", "status": "ok"}\n{"input": "b", "sta')
    assert read_manifest(path) == {"a": {"input": "a", "status": "ok"}}


def test_the_journal_appends_each_row_and_keeps_one_row_per_scene(tmp_path):
    path = tmp_path / MANIFEST_NAME
    path.write_text('{"input": "b", "status": "ok"}\n{"input": "a", "status": "failed"}\n{"input": "c", "st')
    journal = Manifest(path)
    assert path.read_text().splitlines() == ['{"input": "a", "status": "failed"}', '{"input": "b", "status": "ok"}']
    journal.record({"input": "a", "status": "ok"})
    assert path.read_text().splitlines()[-1] == '{"input": "a", "status": "ok"}'  # appended: 3 lines for 2 scenes
    assert len(path.read_text().splitlines()) == 3 and read_manifest(path)["a"]["status"] == "ok"
    journal.close()
    assert path.read_text().splitlines() == ['{"input": "a", "status": "ok"}', '{"input": "b", "status": "ok"}']
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]  # no temporary file left
