"""Text that is not UTF-8 on disk: UTF-16 detection and a stream that transcodes it, so
the chunker sees one encoding."""

from __future__ import annotations

from typing import Protocol

SNIFF = 8192  # bytes of a file's head that decide how it is read
READ = 1024 * 1024


class Readable(Protocol):
    """What the chunker reads from: a binary file, a pipe, a transcoder."""

    def read(self, size: int = -1, /) -> bytes: ...


def utf16_codec(head: bytes) -> str | None:
    """``utf-16`` for text with a UTF-16 byte order mark, ``utf-16-le``/``-be`` for
    mostly-ASCII UTF-16 without one (every other byte NUL), else None."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    sample = head[: SNIFF & ~1]
    if len(sample) < 8:
        return None
    odd, even = sample[1::2], sample[0::2]
    if odd.count(0) > len(odd) * 0.9 and even.count(0) < len(even) * 0.1:
        return "utf-16-le"
    if even.count(0) > len(even) * 0.9 and odd.count(0) < len(odd) * 0.1:
        return "utf-16-be"
    return None


class Transcoded:
    """A UTF-16 stream read as UTF-8 bytes, so the chunker sees one encoding."""

    def __init__(self, stream: Readable, codec: str) -> None:
        import codecs

        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(codec)("replace")
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            data = self._stream.read(READ if size < 0 else max(size, 2))
            text = self._decoder.decode(data, final=not data)
            self._pending += text.encode("utf-8", "replace")
            if not data:
                break
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class Prefixed:
    """``head`` (already read) followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            out = self._head if size < 0 else self._head[:size]
            self._head = self._head[len(out) :]
            return out
        return self._stream.read(size)
