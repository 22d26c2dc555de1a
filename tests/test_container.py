"""Tests for sar_codec.container: round trip, atomic writes, header-only reads, truncation and corruption fuzzing."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from sar_codec import container as container_module
from sar_codec.container import (
    FORMAT_VERSION,
    INDEX_ENTRY_SIZE,
    MAGIC,
    PREAMBLE_SIZE,
    Container,
    ContainerWriter,
    read_header,
)
from sar_codec.errors import ContainerError, InputError, OutputExistsError

HEADER = {
    "model": "sar-hyperprior",
    "quality": 3,
    "shape": [2, 1024, 768],
    "gcps": [{"row": 0.5, "col": 0.5, "x": 12.25, "y": -45.0, "z": 0.0}],
    "crs": "EPSG:4326",
    "radiometry": {"db_min": -30.0, "db_max": 10.0},
    "polarisations": ["VV", "VH"],
    "note": "größe ∅",
}
BLOCKS = [b"first block", b"", b"\x00\xff" * 20, b"x", b"", b"last block payload"]
WRITE_ORDER = [3, 0, 5, 2, 1]  # block 4 is never written


def write_container(path, header=HEADER, blocks=BLOCKS, order=WRITE_ORDER, **kwargs):
    with ContainerWriter(path, header, len(blocks), **kwargs) as w:
        for i in order:
            w.write_block(i, blocks[i])
    return w


def read_all(path):
    with Container.open(path) as c:
        return c.header, [c.read_block(i) for i in range(c.block_count)]


@pytest.fixture
def sarc(tmp_path):
    path = tmp_path / "scene.sarc"
    write_container(path)
    return path


def test_round_trip(sarc):
    header, blocks = read_all(sarc)
    assert header == HEADER
    assert blocks == BLOCKS
    assert read_header(sarc) == HEADER
    with Container.open(sarc) as c:
        assert c.block_count == len(BLOCKS)
        assert c.file_size == os.path.getsize(sarc)
        assert [c.block_length(i) for i in range(c.block_count)] == [len(b) for b in BLOCKS]


def test_layout_matches_docs(sarc):
    data = sarc.read_bytes()
    magic, version, flags, header_length, _, index_offset, block_count, _, _, reserved = struct.unpack_from(
        "<8sHHIIQIIII", data)
    assert (magic, version, flags, reserved) == (MAGIC, FORMAT_VERSION, 0, 0)
    assert PREAMBLE_SIZE == 44 and INDEX_ENTRY_SIZE == 16
    assert data[PREAMBLE_SIZE:PREAMBLE_SIZE + header_length].decode() == (
        '{"crs": "EPSG:4326", "gcps": [{"col": 0.5, "row": 0.5, "x": 12.25, "y": -45.0, "z": 0.0}], '
        '"model": "sar-hyperprior", "note": "größe ∅", "polarisations": ["VV", "VH"], "quality": 3, '
        '"radiometry": {"db_max": 10.0, "db_min": -30.0}, "shape": [2, 1024, 768]}')
    assert block_count == len(BLOCKS)
    assert index_offset + INDEX_ENTRY_SIZE * block_count == len(data)
    entries = list(struct.iter_unpack("<QII", data[index_offset:]))
    # payloads lie back to back in the order written; empty blocks are (0, 0, 0)
    assert entries[1] == entries[4] == (0, 0, 0)
    written = [entries[i] for i in WRITE_ORDER if BLOCKS[i]]
    assert [o for o, _, _ in written] == sorted(o for o, _, _ in written)
    assert written[0][0] == PREAMBLE_SIZE + header_length
    assert all(a[0] + a[1] == b[0] for a, b in zip(written, written[1:]))


def test_bytes_written_tracks_progress_and_ends_at_file_size(tmp_path):
    path = tmp_path / "a.sarc"
    with ContainerWriter(path, {}, 2) as w:
        start = w.bytes_written
        w.write_block(1, b"12345")
        assert w.bytes_written == start + 5
    assert w.bytes_written == os.path.getsize(path)


def test_zero_blocks(tmp_path):
    path = tmp_path / "empty.sarc"
    write_container(path, header={}, blocks=[], order=[])
    assert read_all(path) == ({}, [])


def test_write_block_programming_errors(tmp_path):
    w = ContainerWriter(tmp_path / "a.sarc", {}, 2)
    with pytest.raises(IndexError):
        w.write_block(2, b"x")
    with pytest.raises(IndexError):
        w.write_block(-1, b"x")
    w.write_block(0, b"x")
    with pytest.raises(ValueError):
        w.write_block(0, b"y")
    w.close()
    with pytest.raises(ValueError):
        w.write_block(1, b"y")


def test_header_must_be_strict_json(tmp_path):
    with pytest.raises(ValueError):
        ContainerWriter(tmp_path / "a.sarc", {"nodata": float("nan")}, 1)
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_with_leaves_nothing(tmp_path):
    path = tmp_path / "scene.sarc"
    with pytest.raises(RuntimeError):
        with ContainerWriter(path, HEADER, 3) as w:
            w.write_block(0, b"partial")
            raise RuntimeError("cancelled mid-way")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_untouched_without_overwrite(tmp_path):
    path = tmp_path / "scene.sarc"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        ContainerWriter(path, HEADER, 1)
    assert path.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [path]


def test_aborted_overwrite_keeps_the_old_file(tmp_path):
    path = tmp_path / "scene.sarc"
    path.write_bytes(b"precious")
    with pytest.raises(KeyboardInterrupt):
        with ContainerWriter(path, HEADER, 1, overwrite=True) as w:
            w.write_block(0, b"new")
            assert path.read_bytes() == b"precious"
            raise KeyboardInterrupt
    assert path.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [path]


def test_overwrite_replaces_on_close(tmp_path):
    path = tmp_path / "scene.sarc"
    path.write_bytes(b"old")
    write_container(path, overwrite=True)
    assert read_all(path) == (HEADER, BLOCKS)
    assert list(tmp_path.iterdir()) == [path]


def test_missing_input_and_output_directory(tmp_path):
    with pytest.raises(InputError, match="No such file"):
        Container.open(tmp_path / "missing.sarc")
    with pytest.raises(InputError, match="No such file"):
        read_header(tmp_path / "missing.sarc")
    with pytest.raises(InputError):
        ContainerWriter(tmp_path / "no" / "dir.sarc", {}, 1)


def test_read_header_reads_only_the_start(sarc, monkeypatch):
    header_end = PREAMBLE_SIZE + struct.unpack_from("<I", sarc.read_bytes(), 12)[0]
    reads = []

    class Recording:
        def __init__(self, f):
            self._f = f

        def read(self, n=-1):
            start = self._f.tell()
            data = self._f.read(n)
            reads.append((start, start + len(data)))
            return data

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    monkeypatch.setattr(container_module, "open", lambda *a, **k: Recording(open(*a, **k)), raising=False)
    assert read_header(sarc) == HEADER
    assert reads and max(end for _, end in reads) <= header_end


def test_read_header_ignores_corrupt_blocks_but_open_does_not(sarc):
    data = bytearray(sarc.read_bytes())
    data[-1] ^= 0xFF  # last byte of the index
    sarc.write_bytes(bytes(data))
    assert read_header(sarc) == HEADER
    with pytest.raises(ContainerError, match="index"):
        Container.open(sarc)


def test_error_messages(tmp_path, sarc):
    data = sarc.read_bytes()
    name = str(tmp_path / "bad.sarc")

    def check(blob, pattern):
        with open(name, "wb") as f:
            f.write(blob)
        with pytest.raises(ContainerError, match=pattern):
            read_all(name)

    check(b"GIF89a" + data[6:], r"bad\.sarc is not a sar-codec container \(bad magic\)")
    check(data[:-1], r"is truncated: the index ends at byte \d+ but the file has \d+ bytes")
    check(data[:20], r"is truncated: it has 20 bytes")
    check(data[:8] + struct.pack("<H", 7) + data[10:],
          "uses container format version 7; this sar-codec reads version 1")
    corrupt = bytearray(data)
    index_offset = struct.unpack_from("<Q", data, 20)[0]
    block0_offset = struct.unpack_from("<Q", data, index_offset)[0]
    corrupt[block0_offset] ^= 1
    check(bytes(corrupt), r"block 0 of .*bad\.sarc is corrupted \(CRC mismatch\)")


def outcome(path):
    """Read everything; return ("error", None) on ContainerError, else what was read."""
    try:
        header_only = read_header(path)
    except ContainerError:
        header_only = None
    try:
        header, blocks = read_all(path)
    except ContainerError:
        return "error", header_only
    return (header, blocks), header_only


def assert_intact_or_error(path):
    result, header_only = outcome(path)
    assert header_only is None or header_only == HEADER
    if result != "error":
        assert result == (HEADER, BLOCKS)
    return result


def test_fuzz_every_truncation(sarc, tmp_path):
    data = sarc.read_bytes()
    bad = tmp_path / "bad.sarc"
    for n in range(len(data)):
        bad.write_bytes(data[:n])
        assert assert_intact_or_error(bad) == "error", n
    bad.write_bytes(data + b"\x00")
    assert assert_intact_or_error(bad) == "error"


def test_fuzz_single_byte_corruptions_always_detected(sarc, tmp_path):
    """Every byte of the file is covered by a CRC or a fixed value, so each single-byte change is caught."""
    data = sarc.read_bytes()
    bad = tmp_path / "bad.sarc"
    rng = np.random.default_rng(20240601)
    positions = np.arange(len(data))  # every byte position once, with a random non-zero XOR
    for pos, flip in zip(positions, rng.integers(1, 256, size=len(data))):
        corrupt = bytearray(data)
        corrupt[pos] ^= int(flip)
        bad.write_bytes(bytes(corrupt))
        assert assert_intact_or_error(bad) == "error", pos


def test_fuzz_multi_byte_corruptions(sarc, tmp_path):
    data = sarc.read_bytes()
    bad = tmp_path / "bad.sarc"
    rng = np.random.default_rng(7)
    for case in range(300):
        corrupt = np.frombuffer(data, dtype=np.uint8).copy()
        if case % 3 == 0:  # a run of random bytes, e.g. a bad sector
            start = int(rng.integers(0, len(data)))
            run = corrupt[start:start + int(rng.integers(1, 17))]
            run[:] = rng.integers(0, 256, size=run.size)
        else:  # scattered bytes, biased to the preamble where the offsets live
            n = int(rng.integers(2, 9))
            limit = PREAMBLE_SIZE if case % 3 == 1 else len(data)
            where = rng.integers(0, limit, size=n)
            corrupt[where] = rng.integers(0, 256, size=n)
        bad.write_bytes(corrupt.tobytes())
        assert_intact_or_error(bad)


def _forge(data, *, header_length=None, index_offset=None, block_count=None, entry=None):
    """Rewrite preamble fields or index entry 0 and recompute every CRC, as a malicious file would."""
    import zlib

    data = bytearray(data)
    fields = list(struct.unpack_from("<8sHHIIQII", data))
    if entry is not None:
        struct.pack_into("<QII", data, fields[5], *entry)
        fields[7] = zlib.crc32(data[fields[5]:fields[5] + INDEX_ENTRY_SIZE * fields[6]])
    for i, value in ((3, header_length), (5, index_offset), (6, block_count)):
        if value is not None:
            fields[i] = value
    struct.pack_into("<8sHHIIQII", data, 0, *fields)
    struct.pack_into("<I", data, 36, zlib.crc32(data[:36]))
    return bytes(data)


@pytest.mark.parametrize("forgery", [
    dict(header_length=2**32 - 1),
    dict(index_offset=2**64 - 1),
    dict(index_offset=10),
    dict(block_count=2**32 - 1),
    dict(block_count=0),
    dict(entry=(2**64 - 8, 16, 0)),
    dict(entry=(0, 5, 0)),
    dict(entry=(8, 2**32 - 1, 0)),
    dict(entry=(0, 0, 1)),
    dict(entry=(5, 0, 0)),
])
def test_forged_offsets_with_valid_crcs_are_rejected(sarc, tmp_path, forgery):
    bad = tmp_path / "bad.sarc"
    bad.write_bytes(_forge(sarc.read_bytes(), **forgery))
    with pytest.raises(ContainerError):
        read_all(bad)


def test_import_stays_light():
    code = ("import sys, sar_codec.container; "
            "print(sorted(m for m in ('torch', 'rasterio', 'click', 'compressai', 'qgis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
