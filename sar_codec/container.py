"""The .sarc container: a header (a JSON-like dict) and indexed block payloads in one file, written atomically.

The byte layout is documented once, in ``docs/container.md``. Version 2 is written (a 28-byte preamble and
the compact header of :mod:`sar_codec.compact_header`); version 1 (44-byte preamble, JSON text header) is
still read. This module imports only the standard library and numpy, so that reading a header
(``sar-codec info``) stays fast.
"""

from __future__ import annotations

import json
import operator
import os
import struct
import threading
import weakref
import zlib
from typing import BinaryIO

import numpy as np

from sar_codec import compact_header
from sar_codec.errors import ContainerError, InputError, OutputExistsError
from sar_codec.files import publish, remove_stale_temps, temp_path

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "PREAMBLE_SIZE",
    "INDEX_ENTRY_SIZE",
    "Container",
    "ContainerWriter",
    "read_header",
]

FORMAT_VERSION = 2  # the version written; versions 1 and 2 are read
READ_VERSIONS = (1, 2)
MAGIC = b"SARC\r\n\x1a\n"
_VERSION_FIELD = struct.Struct("<H")  # at byte 8, right after the magic, in every version
_MAGIC_AND_VERSION = len(MAGIC) + _VERSION_FIELD.size  # 10

# version 2: magic, version, flags, header_length, block_count, index_crc32; then meta_crc32, the CRC-32 of
# these 24 bytes followed by the header bytes
_V2_FIELDS = struct.Struct("<8sHHIII")
_V2_CRC = struct.Struct("<I")
PREAMBLE_SIZE = _V2_FIELDS.size + _V2_CRC.size  # 28

# version 1: magic, version, flags, header_length, header_crc32, index_offset, block_count, index_crc32
_V1_CRC_COVERED = struct.Struct("<8sHHIIQII")  # 36 bytes, covered by preamble_crc32
_V1_TAIL = struct.Struct("<II")  # preamble_crc32, reserved
V1_PREAMBLE_SIZE = _V1_CRC_COVERED.size + _V1_TAIL.size  # 44

_INDEX_DTYPE = np.dtype([("offset", "<u8"), ("length", "<u4"), ("crc32", "<u4")])
INDEX_ENTRY_SIZE = _INDEX_DTYPE.itemsize  # 16
_INDEX_ENTRY = struct.Struct("<QII")

_U32_MAX = 2**32 - 1


def _crc32(data: bytes | memoryview, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


def _encode_header(header: dict) -> bytes:
    """The header in the compact encoding of version 2 (see ``sar_codec.compact_header``)."""
    if not isinstance(header, dict):
        raise TypeError(f"the container header must be a dict, not {type(header).__name__}")
    data = compact_header.encode(header)
    if len(data) > _U32_MAX:
        raise ValueError(f"the container header is {len(data)} bytes; at most {_U32_MAX} fit")
    return data


def _pack_preamble(header: bytes, block_count: int, index_crc: int) -> bytes:
    fields = _V2_FIELDS.pack(MAGIC, FORMAT_VERSION, 0, len(header), block_count, index_crc)
    return fields + _V2_CRC.pack(_crc32(header, _crc32(fields)))


def _open_for_reading(path: str | os.PathLike) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"No such file: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise InputError(f"{os.fspath(path)} is a directory, not a sar-codec container") from None


def _read_exactly(f: BinaryIO, offset: int, length: int, name: str, what: str) -> bytes:
    """Read ``length`` bytes at ``offset``; the caller has checked them against the file size."""
    f.seek(offset)
    data = f.read(length)
    if len(data) != length:
        raise ContainerError(f"{name} is truncated: {what} ends at byte {offset + length} "
                             f"but the file ended at byte {offset + len(data)}")
    return data


class _Preamble:
    """The checked fields of a preamble (of either version)."""

    def __init__(self, version: int, preamble_size: int, header_length: int, index_offset: int,
                 block_count: int, index_crc: int):
        self.version = version
        self.preamble_size = preamble_size
        self.header_length = header_length
        self.index_offset = index_offset
        self.block_count = block_count
        self.index_crc = index_crc

    @property
    def data_start(self) -> int:
        return self.preamble_size + self.header_length


def _parse_version(raw: bytes, file_size: int, name: str) -> int:
    """Check the magic and return the format version (bytes 8-9)."""
    if raw[: len(MAGIC)] != MAGIC[: len(raw)]:
        raise ContainerError(f"{name} is not a sar-codec container (bad magic)")
    if len(raw) < _MAGIC_AND_VERSION:
        raise ContainerError(f"{name} is truncated: it has {file_size} bytes, too few for a preamble")
    (version,) = _VERSION_FIELD.unpack_from(raw, len(MAGIC))
    if version not in READ_VERSIONS:
        raise ContainerError(f"{name} uses container format version {version}; "
                             f"this sar-codec reads versions {' and '.join(map(str, READ_VERSIONS))}")
    return version


def _check_extent(p: _Preamble, file_size: int, name: str) -> None:
    if p.data_start > file_size:
        raise ContainerError(f"{name} is truncated: the header ends at byte {p.data_start} "
                             f"but the file has {file_size} bytes")
    if p.index_offset < p.data_start:
        raise ContainerError(f"{name} is corrupted or truncated: its index would start at byte "
                             f"{p.index_offset}, inside the header that ends at byte {p.data_start}")
    index_end = p.index_offset + INDEX_ENTRY_SIZE * p.block_count
    if index_end > file_size:
        raise ContainerError(f"{name} is truncated: the index ends at byte {index_end} "
                             f"but the file has {file_size} bytes")
    if index_end < file_size:
        raise ContainerError(f"{name} is corrupted: the index ends at byte {index_end} "
                             f"but the file has {file_size} bytes (unexpected data at the end)")


def _parse_v1_preamble(raw: bytes, file_size: int, name: str) -> tuple[_Preamble, int]:
    """A version 1 preamble: (its fields, the header CRC)."""
    if len(raw) < V1_PREAMBLE_SIZE:
        raise ContainerError(f"{name} is truncated: it has {file_size} bytes, "
                             f"fewer than the {V1_PREAMBLE_SIZE}-byte preamble")
    fields = _V1_CRC_COVERED.unpack_from(raw, 0)
    preamble_crc, reserved = _V1_TAIL.unpack_from(raw, _V1_CRC_COVERED.size)
    if preamble_crc != _crc32(raw[: _V1_CRC_COVERED.size]):
        raise ContainerError(f"{name} is corrupted (preamble CRC mismatch)")
    _, _, flags, header_length, header_crc, index_offset, block_count, index_crc = fields
    if flags != 0 or reserved != 0:
        raise ContainerError(f"{name} sets preamble flags or reserved bits that container "
                             "format version 1 does not define")
    p = _Preamble(1, V1_PREAMBLE_SIZE, header_length, index_offset, block_count, index_crc)
    _check_extent(p, file_size, name)
    return p, header_crc


def _parse_v2_preamble(raw: bytes, file_size: int, name: str) -> _Preamble:
    """A version 2 preamble; its CRC, which covers the header too, is checked once the header is read."""
    if len(raw) < PREAMBLE_SIZE:
        raise ContainerError(f"{name} is truncated: it has {file_size} bytes, "
                             f"fewer than the {PREAMBLE_SIZE}-byte preamble")
    _, _, flags, header_length, block_count, index_crc = _V2_FIELDS.unpack_from(raw, 0)
    index_offset = file_size - INDEX_ENTRY_SIZE * block_count  # the index ends the file
    p = _Preamble(2, PREAMBLE_SIZE, header_length, index_offset, block_count, index_crc)
    if p.data_start > file_size:
        raise ContainerError(f"{name} is truncated or corrupted: the header would end at byte "
                             f"{p.data_start} but the file has {file_size} bytes")
    if index_offset < p.data_start:
        raise ContainerError(f"{name} is truncated or corrupted: a header of {header_length} bytes and "
                             f"{block_count} index entries need more than its {file_size} bytes")
    if flags != 0:
        raise ContainerError(f"{name} sets preamble flags that container format version 2 does not define")
    return p


def _decode_json(raw: bytes, name: str) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ContainerError(f"the header of {name} is not valid UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise ContainerError(f"the header of {name} is not a JSON object")
    return header


def _decode_compact(raw: bytes, name: str) -> dict:
    try:
        header = compact_header.decode(raw)
    except compact_header.HeaderFormatError as exc:
        raise ContainerError(f"the header of {name} is not a valid compact header ({exc})") from None
    if not isinstance(header, dict):
        raise ContainerError(f"the header of {name} is not a dict")
    return header


def _read_start(f: BinaryIO, name: str) -> tuple[_Preamble, dict, int]:
    """Read and check the preamble and the header only; return them and the file size."""
    file_size = os.fstat(f.fileno()).st_size
    f.seek(0)
    raw = f.read(_MAGIC_AND_VERSION)
    version = _parse_version(raw, file_size, name)
    if version == 1:
        raw += f.read(V1_PREAMBLE_SIZE - len(raw))
        p, header_crc = _parse_v1_preamble(raw, file_size, name)
        header_raw = _read_exactly(f, p.preamble_size, p.header_length, name, "the header")
        if _crc32(header_raw) != header_crc:
            raise ContainerError(f"the header of {name} is corrupted (CRC mismatch)")
        return p, _decode_json(header_raw, name), file_size
    raw += f.read(PREAMBLE_SIZE - len(raw))
    p = _parse_v2_preamble(raw, file_size, name)
    header_raw = _read_exactly(f, p.preamble_size, p.header_length, name, "the header")
    (meta_crc,) = _V2_CRC.unpack_from(raw, _V2_FIELDS.size)
    if _crc32(header_raw, _crc32(raw[: _V2_FIELDS.size])) != meta_crc:
        raise ContainerError(f"the preamble or header of {name} is corrupted (CRC mismatch)")
    return p, _decode_compact(header_raw, name), file_size


def _parse_index(raw: bytes, p: _Preamble, name: str) -> np.ndarray:
    """Check the index CRC and that every entry lies between the header and the index.

    In version 2 the non-empty payloads must also fill the space between the header and the index exactly
    (back to back, no gap, no overlap), so that every byte of the file is covered by a CRC.
    """
    if _crc32(raw) != p.index_crc:
        what = "is corrupted (CRC mismatch)" if p.version == 1 else "is corrupted or the file truncated (CRC mismatch)"
        raise ContainerError(f"the block index of {name} {what}")
    index = np.frombuffer(raw, dtype=_INDEX_DTYPE)
    offset = index["offset"]
    length = index["length"].astype(np.uint64)
    end = np.uint64(p.index_offset)
    # offset + length <= end, written so that no uint64 sum can wrap around
    inside = (offset >= np.uint64(p.data_start)) & (length <= end) & (offset <= end - np.minimum(length, end))
    well_formed = np.where(length == 0, (offset == 0) & (index["crc32"] == 0), inside)
    bad = np.flatnonzero(~well_formed)
    if bad.size:
        i = int(bad[0])
        raise ContainerError(f"block {i} of {name} has an invalid index entry (offset "
                             f"{int(offset[i])}, length {int(length[i])}, crc32 {int(index['crc32'][i])})")
    if p.version >= 2:
        used = np.flatnonzero(length > 0)
        order = used[np.argsort(offset[used], kind="stable")]
        starts = np.concatenate([[np.uint64(p.data_start)], offset[order] + length[order]])
        if not (np.array_equal(offset[order], starts[:-1]) and starts[-1] == end):
            raise ContainerError(f"the block index of {name} does not cover the bytes between its header and "
                                 "its index exactly (gap or overlap)")
    return index


def read_header(path: str | os.PathLike) -> dict:
    """Return the header of a container (as a dict), reading only the preamble and the header.

    The preamble and header CRCs and the file size are checked; the index and blocks are not read.
    """
    name = os.fspath(path)
    with _open_for_reading(path) as f:
        _, header, _ = _read_start(f, name)
    return header


class ContainerWriter:
    """Writes a container atomically: to a temporary file in the destination directory, renamed over the
    destination only by a successful close().

    Parameters
    ----------
    path
        Destination of the ``.sarc`` file.
    header
        JSON-serialisable dict stored as the container header (tuples come back as lists).
    block_count
        Number of block slots; each may be written once, in any order, and unwritten ones read as empty.
    overwrite
        Replace an existing file at ``path`` on close; without it, an existing file raises
        :class:`~sar_codec.errors.OutputExistsError` and is left untouched.
    """

    def __init__(self, path: str | os.PathLike, header: dict, block_count: int, *,
                 overwrite: bool = False):
        self.path = os.fspath(path)
        self.block_count = operator.index(block_count)
        if not 0 <= self.block_count <= _U32_MAX:
            raise ValueError(f"block_count must be between 0 and {_U32_MAX}, not {block_count}")
        self._overwrite = overwrite
        self._header_bytes = _encode_header(header)
        self._check_destination()
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise InputError(f"Cannot write {self.path}: the directory {directory} does not exist")
        remove_stale_temps(self.path)
        self._tmp_path = os.fspath(temp_path(self.path))
        self._file: BinaryIO = open(self._tmp_path, "xb")  # the permissions of any new file (umask)
        self._finalizer = weakref.finalize(self, _discard, self._file, self._tmp_path)
        self._entries = [(0, 0, 0)] * self.block_count
        self._written = bytearray(self.block_count)
        self._closed = False
        try:
            self._file.write(bytes(PREAMBLE_SIZE))  # patched by close()
            self._file.write(self._header_bytes)
        except BaseException:
            self.abort()
            raise
        self._position = PREAMBLE_SIZE + len(self._header_bytes)

    @property
    def bytes_written(self) -> int:
        """Bytes written so far (preamble, header, payloads; after close(), the whole file)."""
        return self._position

    def _check_destination(self) -> None:
        if os.path.isdir(self.path):
            raise InputError(f"Cannot write {self.path}: it is a directory")
        if not self._overwrite and os.path.lexists(self.path):
            raise OutputExistsError(f"{self.path} exists; allow overwriting to replace it")

    def write_block(self, index: int, payload: bytes) -> None:
        """Append the payload of block ``index``; each block may be written once, in any order."""
        if self._closed:
            raise ValueError(f"the container writer for {self.path} is closed")
        i = operator.index(index)
        if not 0 <= i < self.block_count:
            raise IndexError(f"block index {index} is outside 0..{self.block_count - 1}")
        if self._written[i]:
            raise ValueError(f"block {i} of {self.path} was already written")
        data = memoryview(payload).cast("B")
        if len(data) > _U32_MAX:
            raise ValueError(f"block {i} is {len(data)} bytes; at most {_U32_MAX} fit")
        if len(data):
            self._file.write(data)
            self._entries[i] = (self._position, len(data), _crc32(data))
            self._position += len(data)
        self._written[i] = 1

    def close(self) -> None:
        """Write the index, patch the preamble, flush, fsync, and rename onto the destination."""
        if self._closed:
            return
        try:
            index_offset = self._position
            index = b"".join(_INDEX_ENTRY.pack(*entry) for entry in self._entries)
            self._file.write(index)
            self._file.seek(0)
            self._file.write(_pack_preamble(self._header_bytes, self.block_count, _crc32(index)))
            self._file.close()
            self._check_destination()
            publish(self._tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._finalizer.detach()
        self._closed = True
        self._position = index_offset + len(index)

    def abort(self) -> None:
        """Remove the temporary file; nothing at the destination is touched."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _discard(file: BinaryIO, tmp_path: str) -> None:
    """Close and remove a temporary file (also run if a writer is dropped without close())."""
    try:
        file.close()
    finally:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass


class Container:
    """Read-only view of a container; opening reads the preamble, header and index and checks their CRCs."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file = _open_for_reading(path)
        self._lock = threading.Lock()
        try:
            p, self.header, self.file_size = _read_start(self._file, self.path)
            raw_index = _read_exactly(self._file, p.index_offset, INDEX_ENTRY_SIZE * p.block_count,
                                      self.path, "the index")
            self._index = _parse_index(raw_index, p, self.path)
        except BaseException:
            self._file.close()
            raise
        self.block_count: int = p.block_count

    @classmethod
    def open(cls, path: str | os.PathLike) -> Container:
        """Open and check a container; use as ``with Container.open(path) as c:``."""
        return cls(path)

    def _entry(self, index: int) -> tuple[int, int, int]:
        i = operator.index(index)
        if not 0 <= i < self.block_count:
            raise IndexError(f"block index {index} is outside 0..{self.block_count - 1}")
        offset, length, crc = self._index[i].tolist()
        return offset, length, crc

    def block_length(self, index: int) -> int:
        """Payload length of block ``index`` in bytes (0: no data)."""
        return self._entry(index)[1]

    def read_block(self, index: int) -> bytes:
        """Return the payload of block ``index`` after checking its CRC (b"" for an empty block)."""
        offset, length, crc = self._entry(index)
        if length == 0:
            return b""
        if self._file.closed:
            raise ValueError(f"the container {self.path} is closed")
        i = operator.index(index)
        with self._lock:
            data = _read_exactly(self._file, offset, length, self.path, f"block {i}")
        if _crc32(data) != crc:
            raise ContainerError(f"block {i} of {self.path} is corrupted (CRC mismatch)")
        return data

    def close(self) -> None:
        """Close the file; the header and index stay readable."""
        self._file.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Container({self.path!r}, block_count={self.block_count}, file_size={self.file_size})"
