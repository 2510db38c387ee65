"""The real size of a JPEG, read from its frame header (SOF) before any pixel is decoded.

Why: a decoder allocates width x height x channels for whatever the SOF marker declares,
however few bytes follow. A 367 KB JPEG cost 262 MB to decode, so a 6 MB one could exhaust
the memory of every detector in the group in turn. The Kafka headers' width/height are the
producer's word, not the file's; this parser reads the file's own word.

Pure Python and bounded: it walks marker segments by their lengths (each step moves
forward, at most MAX_SEGMENTS of them) and stops at the first SOF. Only baseline (SOF0) and
progressive (SOF2) Huffman JPEGs with 8-bit samples and 1, 3 or 4 components are accepted:
that is what cameras and ingest's encoder produce. Lossless, hierarchical, arithmetic-coded
and 12-bit JPEGs, and anything that is not a JPEG at all (PNG, TIFF, ... which the decoder
would happily expand too), are refused before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

SOI = b"\xff\xd8"
SOF_BASELINE, SOF_PROGRESSIVE = 0xC0, 0xC2
# The other frame types (extended sequential, lossless, hierarchical, arithmetic coding).
SOF_UNSUPPORTED = frozenset({0xC1, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: markers without a length
SOS, EOI = 0xDA, 0xD9
MAX_SEGMENTS = 1024  # EXIF, ICC chunks, tables...: real files have a few dozen
COMPONENTS = (1, 3, 4)  # grey, YCbCr/RGB, CMYK/YCCK


class JpegHeaderError(ValueError):
    """str() is a dead-letter reason: 'corrupt frame: ...' or 'unsupported frame: ...'."""


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    components: int
    progressive: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _corrupt(detail: str) -> JpegHeaderError:
    return JpegHeaderError(f"corrupt frame: {detail}")


def _unsupported(detail: str) -> JpegHeaderError:
    return JpegHeaderError(f"unsupported frame: {detail}")


def read_jpeg_header(data: bytes) -> JpegHeader:
    """The SOF of `data`; raises JpegHeaderError for anything but a usable JPEG header."""
    if data[:2] != SOI:
        raise _corrupt("not a JPEG (no SOI marker)")
    pos, end = 2, len(data)
    for _ in range(MAX_SEGMENTS):
        if pos >= end or data[pos] != 0xFF:
            raise _corrupt(f"no marker at byte {pos}")
        while pos < end and data[pos] == 0xFF:  # fill bytes may pad a marker
            pos += 1
        if pos >= end:
            raise _corrupt("truncated before the frame header")
        marker = data[pos]
        pos += 1
        if marker in STANDALONE:
            continue
        if marker in (SOS, EOI, 0x00, SOI[1]):
            raise _corrupt(f"marker 0x{marker:02X} before the frame header")
        if pos + 2 > end:
            raise _corrupt("truncated segment length")
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + length > end:
            raise _corrupt(f"segment 0x{marker:02X} of {length} bytes overruns the data")
        if marker in (SOF_BASELINE, SOF_PROGRESSIVE):
            return _frame_header(data[pos + 2:pos + length], marker == SOF_PROGRESSIVE)
        if marker in SOF_UNSUPPORTED:
            raise _unsupported(f"not a baseline or progressive JPEG (SOF{marker - 0xC0})")
        pos += length
    raise _corrupt(f"no frame header in the first {MAX_SEGMENTS} segments")


def _frame_header(body: bytes, progressive: bool) -> JpegHeader:
    """SOF body: precision, height, width, component count, then 3 bytes per component."""
    if len(body) < 6:
        raise _corrupt("short frame header")
    precision, components = body[0], body[5]
    height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
    if precision != 8:
        raise _unsupported(f"{precision}-bit samples")
    if components not in COMPONENTS:
        raise _unsupported(f"{components} components")
    if len(body) != 6 + 3 * components:
        raise _corrupt("frame header length does not match its components")
    if width == 0 or height == 0:  # height 0 = "given later by a DNL marker"
        raise _unsupported(f"size {width}x{height} not in the frame header")
    for i in range(components):
        sampling = body[7 + 3 * i]
        if not (1 <= sampling >> 4 <= 4 and 1 <= sampling & 0x0F <= 4):
            raise _corrupt(f"sampling factors 0x{sampling:02X} out of range")
    return JpegHeader(width, height, components, progressive)
