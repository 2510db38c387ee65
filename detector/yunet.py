"""libfacedetection's YuNet called directly (ctypes), without the `yuface` wheel's binding.

The wheel ships the library (weights built in) and a Python binding whose `detect` leaks
its 36 KB result buffer on every call (measured: +36.0 KB RSS per call on a 640x360
frame, 0.0 through this module) - over a gigabyte per half hour on a 20 fps detector. So
the library's one C++ entry point, `facedetect_cnn(result_buffer, bgr, width, height,
step)`, is called here with a buffer we own and reuse (one per thread).

Result layout (libfacedetection v3): an int count, then 16 int16 per face: confidence
(0..100), x, y, w, h, five landmark (x, y) pairs, one spare.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

RESULT_BUFFER_BYTES = 0x9000  # libfacedetection's DETECT_BUFFER_SIZE
VALUES_PER_FACE = 16
_SYMBOL = "_Z14facedetect_cnnPhS_iii"  # facedetect_cnn(unsigned char*, unsigned char*, int, int, int)


class YuNetError(RuntimeError):
    """The library cannot be found or loaded; the message says where it looked."""


def _load() -> ctypes._CFuncPtr:
    try:
        import yuface  # the wheel that carries libfacedetection.so
    except ImportError:
        raise YuNetError("the YuNet face detector needs the `yuface` package") from None
    path = Path(yuface.__file__).with_name("libfacedetection.so")
    try:
        fn = getattr(ctypes.CDLL(str(path)), _SYMBOL)
    except (OSError, AttributeError) as exc:
        raise YuNetError(f"cannot load {path}: {exc}") from None
    fn.restype = ctypes.POINTER(ctypes.c_int)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return fn


class YuNet:
    """detect(bgr) -> (N, 5) int array of confidence (0..100), x, y, w, h."""

    def __init__(self):
        self._fn = _load()
        self._local = threading.local()
        # The library sets up its network on its first call (a static "initialised" flag,
        # unguarded): that call is made by one thread at a time; later ones run in parallel.
        self._first_call = threading.Lock()
        self._initialised = False

    def _buffer(self) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = np.zeros(RESULT_BUFFER_BYTES, np.uint8)
        return buf

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError("YuNet needs an (H, W, 3) uint8 BGR image")
        img = np.ascontiguousarray(bgr)
        buf = self._buffer()
        if self._initialised:
            result = self._call(buf, img)
        else:
            with self._first_call:
                result = self._call(buf, img)
                self._initialised = True
        count = int(result[0]) if result else 0
        count = max(0, min(count, (RESULT_BUFFER_BYTES - 4) // (2 * VALUES_PER_FACE)))
        rows = np.frombuffer(buf, np.int16, count=VALUES_PER_FACE * count, offset=4)
        return rows.reshape(count, VALUES_PER_FACE)[:, :5].astype(np.int32)

    def _call(self, buf: np.ndarray, img: np.ndarray):
        return self._fn(buf.ctypes.data, img.ctypes.data, img.shape[1], img.shape[0], img.strides[0])
