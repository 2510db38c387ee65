"""Camera corruptions of 48x48 face crops: the evaluation set and the training augmentation.

`CORRUPTIONS` is the fixed table `evaluate --corruptions` reports, one corruption at a
time, each deterministic given a seed. `random_camera_corruption` draws milder-to-harsher
versions of the same degradations while training, so the model meets what store cameras
produce (compression, soft focus, exposure, small faces upscaled) before it is measured on it.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Corruption = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _each(faces: np.ndarray, fn) -> np.ndarray:
    """Apply fn(one (H, W) uint8 image, index) to a (N, H, W, 1) batch."""
    out = np.empty_like(faces)
    for i, face in enumerate(faces):
        out[i, ..., 0] = fn(face[..., 0], i)
    return out


def jpeg(faces: np.ndarray, quality: int | np.ndarray) -> np.ndarray:
    q = np.broadcast_to(np.asarray(quality), (len(faces),))

    def one(img, i):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q[i])])
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return _each(faces, one)


def gaussian_blur(faces: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
    s = np.broadcast_to(np.asarray(sigma, float), (len(faces),))
    return _each(faces, lambda img, i: cv2.GaussianBlur(img, (0, 0), float(s[i]),
                                                        borderType=cv2.BORDER_REFLECT))


def brightness(faces: np.ndarray, factor: float | np.ndarray) -> np.ndarray:
    f = np.broadcast_to(np.asarray(factor, np.float32), (len(faces),))
    return np.clip(faces.astype(np.float32) * f[:, None, None, None], 0, 255).astype(np.uint8)


def down_up(faces: np.ndarray, side: int | np.ndarray) -> np.ndarray:
    """Downscale to `side` px and back: a small, far-away face upscaled by the detector's crop."""
    s = np.broadcast_to(np.asarray(side), (len(faces),))
    h, w = faces.shape[1:3]

    def one(img, i):
        small = cv2.resize(img, (int(s[i]), int(s[i])), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return _each(faces, one)


def affine(faces: np.ndarray, degrees: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Rotate each face by degrees[i] about its centre and move it by shift[i] = (dx, dy) px."""
    h, w = faces.shape[1:3]

    def one(img, i):
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), float(degrees[i]), 1.0)
        m[:, 2] += shift[i]
        return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return _each(faces, one)


def _rotate(degrees: float) -> Corruption:
    def fn(faces, rng):  # either direction, one sign drawn per face
        signs = rng.choice([-1.0, 1.0], size=len(faces))
        return affine(faces, signs * degrees, np.zeros((len(faces), 2)))
    return fn


def _shift(pixels: float) -> Corruption:
    def fn(faces, rng):  # `pixels` long, in a random direction per face
        angle = rng.uniform(0, 2 * np.pi, size=len(faces))
        return affine(faces, np.zeros(len(faces)), pixels * np.stack([np.cos(angle), np.sin(angle)], 1))
    return fn


CORRUPTIONS: dict[str, Corruption] = {
    "jpeg_q30": lambda f, rng: jpeg(f, 30),
    "blur_sigma1": lambda f, rng: gaussian_blur(f, 1.0),
    "brightness_x0.6": lambda f, rng: brightness(f, 0.6),
    "brightness_x1.4": lambda f, rng: brightness(f, 1.4),
    "downup_20px": lambda f, rng: down_up(f, 20),
    "rotate_15deg": _rotate(15.0),
    "shift_6px": _shift(6.0),
}


def corrupt(faces: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """One named corruption of a (N, H, W, 1) uint8 batch; the same seed gives the same pixels."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; one of {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name](np.ascontiguousarray(faces, np.uint8), np.random.default_rng(seed))


def random_camera_corruption(faces: np.ndarray, rng: np.random.Generator,
                             probability: float) -> np.ndarray:
    """Training augmentation: each face, with `probability`, gets one random degradation.

    Geometry (flip, rotation, shift, zoom) is done by the model's own augmentation layers;
    this adds what they cannot: compression, defocus, exposure and resolution loss.
    """
    out = np.ascontiguousarray(faces, np.uint8).copy()
    hit = np.flatnonzero(rng.random(len(out)) < probability)
    kinds = rng.integers(0, 4, size=len(hit))
    for kind, fn in enumerate((
            lambda f: jpeg(f, rng.integers(20, 90, len(f))),
            lambda f: gaussian_blur(f, rng.uniform(0.4, 1.4, len(f))),
            lambda f: brightness(f, rng.uniform(0.5, 1.5, len(f))),
            lambda f: down_up(f, rng.integers(14, 36, len(f))))):
        idx = hit[kinds == kind]
        if len(idx):
            out[idx] = fn(out[idx])
    return out
