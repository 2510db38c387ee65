"""Face-crop preprocessing shared by training and serving, so both see identical pixels."""

from __future__ import annotations

import cv2
import numpy as np


def prepare_image(img: np.ndarray, size: int = 48, channels: int = 1) -> np.ndarray:
    """Grey or BGR uint8 image -> (size, size, channels) uint8, resized like FER2013 was made.

    Pixel scaling is not done here: the model's own Rescaling layer does it.
    """
    if img.ndim == 3 and img.shape[2] == 3 and channels == 1:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif img.ndim == 2 and channels == 3:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[0] != size or img.shape[1] != size:
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img.reshape(size, size, channels)
