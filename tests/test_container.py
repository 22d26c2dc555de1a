"""Tests for sar_codec.container: round trip, atomic writes, header-only reads, truncation and corruption fuzzing."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from sar_codec import compact_header
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
    magic, version, flags, header_length, block_count, index_crc, meta_crc = struct.unpack_from("<8sHHIIII", data)
    assert (magic, version, flags) == (MAGIC, FORMAT_VERSION, 0)
    assert FORMAT_VERSION == 2 and PREAMBLE_SIZE == 28 and INDEX_ENTRY_SIZE == 16
    header = data[PREAMBLE_SIZE:PREAMBLE_SIZE + header_length]
    assert meta_crc == zlib.crc32(data[:24] + header)
    assert header[0] == compact_header.ENCODING
    raw = zlib.decompressobj(-15, compact_header.dictionary()).decompress(header[1:])
    assert compact_header.untagged(raw) == HEADER
    assert block_count == len(BLOCKS)
    index_offset = len(data) - INDEX_ENTRY_SIZE * block_count
    assert index_crc == zlib.crc32(data[index_offset:])
    entries = list(struct.iter_unpack("<QII", data[index_offset:]))
    # payloads lie back to back in the order written; empty blocks are (0, 0, 0)
    assert entries[1] == entries[4] == (0, 0, 0)
    written = [entries[i] for i in WRITE_ORDER if BLOCKS[i]]
    assert [o for o, _, _ in written] == sorted(o for o, _, _ in written)
    assert written[0][0] == PREAMBLE_SIZE + header_length
    assert all(a[0] + a[1] == b[0] for a, b in zip(written, written[1:]))
    assert written[-1][0] + written[-1][1] == index_offset


def write_v1(path, header=HEADER, blocks=BLOCKS):
    """A version 1 container, laid out by hand as docs/container.md describes it."""
    text = json.dumps(header, sort_keys=True, ensure_ascii=False, allow_nan=False).encode()
    body, entries, pos = b"", [], 44 + len(text)
    for b in blocks:
        entries.append((pos, len(b), zlib.crc32(b)) if b else (0, 0, 0))
        body += b
        pos += len(b)
    index = b"".join(struct.pack("<QII", *e) for e in entries)
    covered = struct.pack("<8sHHIIQII", MAGIC, 1, 0, len(text), zlib.crc32(text), pos, len(blocks),
                          zlib.crc32(index))
    path.write_bytes(covered + struct.pack("<II", zlib.crc32(covered), 0) + text + body + index)


def test_version_1_containers_still_read(tmp_path):
    path = tmp_path / "v1.sarc"
    write_v1(path)
    assert read_header(path) == HEADER
    assert read_all(path) == (HEADER, BLOCKS)
    data = bytearray(path.read_bytes())
    data[50] ^= 1  # inside the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(ContainerError, match="header .* is corrupted"):
        read_header(path)


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
    check(data[:-1], r"block index of .* is corrupted or the file truncated")
    check(data[:20], r"is truncated: it has 20 bytes")
    check(data[:30], r"is truncated or corrupted: the header would end at byte")
    check(data[:8] + struct.pack("<H", 7) + data[10:],
          "uses container format version 7; this sar-codec reads versions 1 and 2")
    check(data[:8] + struct.pack("<H", 1) + data[10:], r"preamble CRC mismatch")
    corrupt = bytearray(data)
    index_offset = len(data) - INDEX_ENTRY_SIZE * len(BLOCKS)
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


def _forge(data, *, header_length=None, block_count=None, entry=None, header=None):
    """Rewrite preamble fields, the header or index entry 0 and recompute every CRC, as a malicious file would."""
    data = bytearray(data)
    fields = list(struct.unpack_from("<8sHHIII", data))
    index_offset = len(data) - INDEX_ENTRY_SIZE * fields[4]
    if entry is not None:
        struct.pack_into("<QII", data, index_offset, *entry)
        fields[5] = zlib.crc32(data[index_offset:])
    if header is not None:
        data[PREAMBLE_SIZE:PREAMBLE_SIZE + fields[3]] = header
        fields[3] = len(header)
    for i, value in ((3, header_length), (4, block_count)):
        if value is not None:
            fields[i] = value
    struct.pack_into("<8sHHIII", data, 0, *fields)
    struct.pack_into("<I", data, 24, zlib.crc32(data[:24] + data[PREAMBLE_SIZE:PREAMBLE_SIZE + fields[3]]))
    return bytes(data)


def _deflated(tagged_bytes):
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, compact_header.dictionary())
    return bytes([compact_header.ENCODING]) + c.compress(tagged_bytes) + c.flush()


@pytest.mark.parametrize("forgery", [
    dict(header_length=2**32 - 1),
    dict(header_length=3),
    dict(block_count=2**32 - 1),
    dict(block_count=0),
    dict(block_count=7),
    dict(entry=(2**64 - 8, 16, 0)),
    dict(entry=(0, 5, 0)),
    dict(entry=(8, 2**32 - 1, 0)),
    dict(entry=(0, 0, 1)),
    dict(entry=(5, 0, 0)),
    dict(header=b""),
    dict(header=b"\x02" + b"x" * 10),
    dict(header=b"\x01not deflate"),
    dict(header=_deflated(b"\x03\x0a\x05\x00")),  # a list that ends early
    dict(header=_deflated(b"\x03\x0a\x01\x00")),  # a list, not a dict
    dict(header=_deflated(b"\x02\x0b\x00\x00")),  # trailing bytes
    dict(header=_deflated(b"\x05\x0b\x01\x01k\x0c")),  # unknown tag 13
    dict(header=_deflated(b"\xc9\x01" + b"\x0a\x01" * 100 + b"\x00")),  # nested too deep
    dict(header=_deflated(b"\x05\x0b\x01\x01k\x06\x00\x00\xc0\x7f")),  # a float32 NaN
    dict(header=_deflated(b"\x7f\x0b\x00")),  # a skeleton longer than the header
    dict(header=_deflated(b"\x05\x0b\x01\x01k\x03")),  # an int without its value
])
def test_forged_offsets_with_valid_crcs_are_rejected(sarc, tmp_path, forgery):
    bad = tmp_path / "bad.sarc"
    bad.write_bytes(_forge(sarc.read_bytes(), **forgery))
    with pytest.raises(ContainerError):
        read_all(bad)


WKT_4326 = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
            'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
            '0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
            'AUTHORITY["EPSG","4326"]]')


def chip_header(gcps=None, crs=WKT_4326):
    """A scene header as sar_codec.codec writes it for a 64x64 dual-polarisation dB chip."""
    from sar_codec.radiometry import mapping_from_stats

    maps = [mapping_from_stats(-45.595, -4.515, -48.81782531738281, -3.6033973693847656).to_json(),
            mapping_from_stats(-41.285, -4.935, -51.55122375488281, -4.202826023101807).to_json()]
    return {
        "format": "sar-codec", "software": "sar-codec 0.1.0", "block_size": 512, "tile_size": 64, "mappings": maps,
        "model": {"architecture": "bmshj2018-hyperprior", "arithmetic": 2, "quality": 5,
                  "sha256": "581f4d0923b11ab4a40fff517e76ef750750fa24a6070e43ff9bee7146a668f1",
                  "weights": "bmshj2018-hyperprior.pt"},
        "scene": {"band_descriptions": ["VV", "VH"], "band_names": ["VV", "VH"], "band_tags": [{}, {}], "count": 2,
                  "dtype": "float32", "height": 64, "width": 64, "nodata": "nan", "units": "db",
                  "tags": {"AREA_OR_POINT": "Area"},
                  "georef": {"crs": None if gcps else crs, "gcps": gcps, "gcp_crs": WKT_4326 if gcps else None,
                             "transform": None if gcps else
                             [8.983152841195213e-05, 0.0, 12.345678912, 0.0, -8.983152841195213e-05, 45.678912345]}},
    }


def same(a, b):
    """Equal, and of the same types, floats bit for bit (so 0.0 != 0 and -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def sorted_keys(v):
    if isinstance(v, dict):
        return {k: sorted_keys(v[k]) for k in sorted(v)}
    if isinstance(v, (list, tuple)):
        return [sorted_keys(x) for x in v]
    return v


def test_header_round_trip_keeps_every_georeferencing_fact_exactly(tmp_path):
    rng = np.random.default_rng(3)
    places = [(r, c) for r in range(0, 837, 93) for c in range(0, 1280, 64)]
    gcps = [[float(r), float(c) + 0.5, 80.0 + float(rng.random()), 12.0 + float(rng.random()),
             float(rng.normal(30, 40)), str(i + 1), "" if i % 2 else "info ∅"] for i, (r, c) in enumerate(places)]
    gcps[0][2:5] = [-0.0, 5e-324, 1.7976931348623157e308]  # signed zero, subnormal, largest double
    header = chip_header(gcps)
    header["scene"].update(nodata=-9999.5, tags={"AREA_OR_POINT": "Point", "ÿ": "größe ∅", "n": "0123abcd"},
                           band_tags=[{"POLARISATION": "VV"}, {}])
    header["extra"] = {"ints": [0, -1, 2**70, -(2**63)], "bools": [True, False, None], "hex": ["ab", "AB", "abc"],
                       "floats": [0.1, -2.5, 1e-5, 65504.0, 3.4028234663852886e38, 2.0**63]}
    path = tmp_path / "h.sarc"
    write_container(path, header=header, blocks=[b"x"], order=[0])
    for back in (read_header(path), read_all(path)[0]):
        assert same(back, sorted_keys(header))
        assert back["scene"]["georef"]["gcps"] == gcps  # every GCP, id and info included


def test_chip_metadata_fits_in_200_bytes(tmp_path):
    """Preamble + header + index (everything but block payloads) of a one-block chip with CRS and transform."""
    path = tmp_path / "chip.sarc"
    payload = b"p" * 500
    write_container(path, header=chip_header(), blocks=[payload], order=[0])
    assert os.path.getsize(path) - len(payload) <= 200
    assert same(read_header(path), sorted_keys(chip_header()))
    utm = chip_header(crs=WKT_4326.replace("4326", "32631"))  # another WKT costs a little more
    write_container(path, header=utm, blocks=[payload], order=[0], overwrite=True)
    assert os.path.getsize(path) - len(payload) <= 260


def test_dictionary_is_frozen():
    """Each encoding's dictionary may never change: files written with it would no longer read."""
    import hashlib

    assert compact_header.ENCODING == 4 and compact_header.ENCODINGS == (1, 2, 3, 4)
    for encoding, pinned in PINNED_DICTIONARY_SHA256.items():
        assert hashlib.sha256(compact_header.dictionary(encoding)).hexdigest() == pinned


@pytest.mark.parametrize("encoding", [1, 2, 3])
def test_headers_of_earlier_encodings_still_read(encoding):
    """A header written with an earlier encoding's dictionary decodes to the same value."""
    header = {"format": "sar-codec", "model": {"architecture": "bmshj2018-hyperprior", "quality": 3},
              "scene": {"width": 64, "height": 64, "nodata": "nan", "tags": {"A": "1"}}}
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, compact_header.dictionary(encoding))
    old = bytes([encoding]) + c.compress(compact_header.tagged(header)) + c.flush()
    assert compact_header.decode(old) == header
    assert compact_header.encode(header)[0] == 4 and compact_header.decode(compact_header.encode(header)) == header
    with pytest.raises(compact_header.HeaderFormatError, match="encoding 5"):
        compact_header.decode(bytes([5]) + old[1:])


PINNED_DICTIONARY_SHA256 = {1: "3e31ec8b4636a571c34c8461ca92b481fb7801d16519af1520204ec2ccbb48ab",
                            2: "50783ea75b412fc74b9ed1f1e3c94f99233df3525ce89abe9698b28ef832b450",
                            3: "3473201e2c761a29de800be31cdfbd4c8899ae3b45e753ee77c94ff63a26c4d8",
                            4: "865238bf134ca3b5d4107a660423b99378211397e5feb272fc03080e7ef43cac"}


def test_import_stays_light():
    code = ("import sys, sar_codec.container; "
            "print(sorted(m for m in ('torch', 'rasterio', 'click', 'compressai', 'qgis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_container_of_replaced_weights_still_decodes(tmp_path) -> None:
    """tests/data/fast-3ff449a1c5a4-q3.sarc was written on 2026-12-07 by bmshj2018-hyperprior-fast's first
    weights (the built-in 192-pixel dB sample, quality 3, 128-pixel blocks, no pyramid). When newer weights
    replace them they stay installed, retired (sar_codec.registry), for such files: it must decode to the very
    samples it decoded to then."""
    import hashlib

    import rasterio

    from sar_codec.codec import decompress_scene
    from sar_codec.sample import write_sample

    old = Path(__file__).parent / "data" / "fast-3ff449a1c5a4-q3.sarc"
    out = decompress_scene(old, tmp_path / "back.tif", device="cpu", exact=True)
    with rasterio.open(out) as f:
        decoded = f.read()
    with rasterio.open(write_sample(tmp_path / "source.tif", "db", 192)) as f:
        source = f.read()
    assert hashlib.sha256(decoded.tobytes()).hexdigest() == \
        "731e58a86c0b85404672f7a118f2870f47c3d671040de53ae437930a95d4d668"
    valid = np.isfinite(source)
    assert np.isnan(decoded[~valid]).all() and np.sqrt(np.mean((decoded[valid] - source[valid]) ** 2)) < 3.0
