"""Custom Keras layers that are part of the shipped model, so serving loads them too.

Import this module before `keras.models.load_model` of a moodstream model.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="moodstream")
class InferenceBlur(keras.layers.Layer):
    """Gaussian blur applied at inference only: maps sharp faces into the training domain.

    The FER2013 Training split this project trains on has been Gaussian-blurred
    (sigma ~3.2 px at 48x48, measured: median Laplacian variance 6 vs 2,100 for the sharp
    PublicTest split, and the radial power spectra match a sigma 3-3.5 blur). A model
    trained on it misreads sharp faces, so at inference every input gets the same blur;
    in training the inputs are already blurred and pass through untouched.
    sigma <= 0 disables the layer.
    """

    def __init__(self, sigma: float = 0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # 20-tap sums lose too much in bfloat16
        super().__init__(**kwargs)
        self.sigma = float(sigma)
        self.radius = max(1, math.ceil(3 * self.sigma)) if self.sigma > 0 else 0
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.radius:
            t = np.arange(-self.radius, self.radius + 1, dtype="float32")
            g = np.exp(-0.5 * (t / self.sigma) ** 2)
            g /= g.sum()
            ones = np.ones((1, 1, channels, 1), "float32")
            # Separable: a column pass then a row pass, 2(2r+1) taps instead of (2r+1)^2.
            # Constants, not weights: nothing to train or save.
            self._kernel_v = g[:, None, None, None] * ones
            self._kernel_h = g[None, :, None, None] * ones
        self.built = True

    def call(self, inputs, training=False):
        if training or not self.radius:
            return inputs
        r = self.radius
        # symmetric padding ~ OpenCV's default border, so edges are not darkened
        x = ops.pad(inputs, [[0, 0], [r, r], [r, r], [0, 0]], mode="symmetric")
        x = ops.depthwise_conv(x, ops.convert_to_tensor(self._kernel_v), strides=1, padding="valid")
        return ops.depthwise_conv(x, ops.convert_to_tensor(self._kernel_h), strides=1, padding="valid")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}
