"""Bounds-checked reading of the byte sections of a block payload (masks, tile stream, residual layer)."""

from __future__ import annotations

import struct
import zlib

from .errors import ContainerError

_U32 = struct.Struct("<I")


class ByteReader:
    """Reads ``data`` front to back; anything out of bounds or malformed is a ContainerError that names
    ``where`` (the block) and ``section`` (the part of its payload being read)."""

    def __init__(self, data: bytes, where: str, section: str = "payload"):
        self.data, self.pos, self.where, self.section = data, 0, where, section

    def bad(self, what: str) -> ContainerError:
        return ContainerError(f"{self.where} is corrupted ({what} in the {self.section}).")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ContainerError(f"{self.where} is corrupted ({self.section} shorter than its structure).")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def inflate(self, expected: int, what: str = "mask") -> bytes:
        """A u32 length, then that many bytes of zlib data that must inflate to ``expected`` bytes."""
        try:
            out = zlib.decompress(self.take(self.u32()))
        except zlib.error as exc:
            raise ContainerError(f"{self.where} is corrupted (bad {what} data).") from exc
        if len(out) != expected:
            raise ContainerError(f"{self.where} is corrupted ({what} of the wrong size).")
        return out
