"""Model registry: every seed's network plus moodstream's own, chosen by name.

Every factory takes the same arguments and returns an uncompiled keras.Model whose
input is raw pixels in [0, 255]. Normalisation and training-time augmentation live
inside the model, so the detector feeds exactly what training fed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from moodstream.emotions import EMOTIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    input_size: int = 48
    channels: int = 1
    num_classes: int = len(EMOTIONS)
    augment: dict | None = None  # see augmentation_block; None disables it
    weights: str = "none"  # transfer models only: "imagenet" or "none" or a path
    width: float = 1.0  # channel multiplier for moodnet
    dropout: float = 0.3


class UnknownModelError(ValueError):
    pass


_REGISTRY: dict[str, Callable[[ModelSpec], keras.Model]] = {}


def register(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn

    return deco


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, spec: ModelSpec | None = None) -> keras.Model:
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
    return _REGISTRY[name](spec or ModelSpec())


DEFAULT_AUGMENT = {"rotation": 0.05, "shift": 0.1, "zoom": 0.1, "flip": True, "erasing": 0.0}


def augmentation_block(cfg: dict | None) -> list[layers.Layer]:
    """Seed augmentations as Keras preprocessing layers: identity at inference."""
    if not cfg:
        return []
    out: list[layers.Layer] = []
    if cfg.get("flip", True):
        out.append(layers.RandomFlip("horizontal"))
    if cfg.get("rotation"):
        out.append(layers.RandomRotation(cfg["rotation"], fill_mode="nearest"))
    if cfg.get("shift"):
        out.append(layers.RandomTranslation(cfg["shift"], cfg["shift"], fill_mode="nearest"))
    if cfg.get("zoom"):
        out.append(layers.RandomZoom(cfg["zoom"], fill_mode="nearest"))
    if cfg.get("erasing"):
        out.append(layers.RandomErasing(factor=cfg["erasing"], scale=(0.02, 0.2)))
    return out


def _input_and_stem(spec: ModelSpec, scale: str = "unit"):
    """Input, training-only augmentation, then pixel scaling.

    scale: "unit" = [0, 1] as the seeds did; "signed" = [-1, 1]; "standardize" = per-image
    zero mean / unit variance, which makes the model indifferent to a face's contrast and
    brightness (camera crops vary widely, and even FER2013's PublicTest images are
    contrast-stretched far more than its Training images: per-image std 54 vs 38).
    """
    inputs = keras.Input((spec.input_size, spec.input_size, spec.channels), name="pixels")
    x = inputs
    for layer in augmentation_block(spec.augment):
        x = layer(x)
    if scale == "unit":  # [0, 1], as the seeds normalised
        x = layers.Rescaling(1.0 / 255.0, name="normalise")(x)
    elif scale == "signed":  # [-1, 1]
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(x)
    elif scale == "standardize":
        x = layers.Rescaling(1.0 / 255.0, name="unit")(x)
        x = layers.LayerNormalization(axis=[1, 2, 3], center=False, scale=False, epsilon=1e-3,
                                      name="standardize")(x)
    return inputs, x


def _head(x, spec: ModelSpec):
    return layers.Dense(spec.num_classes, activation="softmax", name="probs", dtype="float32")(x)


def _conv_bn(x, filters, kernel=3, strides=1, act="relu", name=None, init="he_normal"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_initializer=init, name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(name=None if name is None else f"{name}_bn")(x)
    return layers.Activation(act, name=None if name is None else f"{name}_{act}")(x)


@register("moodnet")
def moodnet(spec: ModelSpec) -> keras.Model:
    """moodstream's default: a VGG-style stack with BN, tuned for FER at 48x48.

    Four stages of two 3x3 convolutions, then a flattened 6x6 map into one dense
    layer: on FER2013 the spatial layout of the last map (where the mouth and brows
    are) carries signal that global average pooling throws away, and it learns
    markedly faster from scratch. Pixels are standardised per image (see _input_and_stem).
    """
    inputs, x = _input_and_stem(spec, scale="standardize")
    widths = [int(round(w * spec.width)) for w in (32, 64, 128, 256)]
    for stage, w in enumerate(widths):
        x = _conv_bn(x, w, name=f"s{stage}a")
        x = _conv_bn(x, w, name=f"s{stage}b")
        if stage < len(widths) - 1:
            x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)
            x = layers.SpatialDropout2D(0.1 * (stage + 1) * spec.dropout / 0.3, name=f"s{stage}_drop")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(spec.dropout, name="head_drop")(x)
    x = layers.Dense(256, use_bias=False, name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    x = layers.Activation("relu", name="fc_relu")(x)
    x = layers.Dropout(spec.dropout, name="fc_drop")(x)
    return keras.Model(inputs, _head(x, spec), name="moodnet")


@register("dcnn")
def dcnn(spec: ModelSpec) -> keras.Model:
    """Seed 003's DCNN, layer for layer."""
    inputs, x = _input_and_stem(spec)
    for filters, kernel, drop in ((32, 5, 0.4), (64, 3, 0.4), (128, 3, 0.5)):
        for _ in range(2):
            x = layers.Conv2D(filters, kernel, padding="same", kernel_initializer="he_normal")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("elu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(drop)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, kernel_initializer="he_normal")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("elu")(x)
    x = layers.Dropout(0.6)(x)
    return keras.Model(inputs, _head(x, spec), name="dcnn")


@register("custom_cnn")
def custom_cnn(spec: ModelSpec) -> keras.Model:
    """Seed 002's Conv2D / ELU / BN / MaxPool / Dropout network."""
    inputs, x = _input_and_stem(spec)
    for filters in (64, 128, 256):
        x = _conv_bn(x, filters, act="elu")
        x = _conv_bn(x, filters, act="elu")
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="elu", kernel_initializer="he_normal")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inputs, _head(x, spec), name="custom_cnn")


@register("mini_xception")
def mini_xception(spec: ModelSpec) -> keras.Model:
    """Seed FER-DL's Xception: entry flow, residual separable middle flow, exit flow."""
    inputs, x = _input_and_stem(spec)
    x = _conv_bn(x, 8)  # entry flow
    x = _conv_bn(x, 8)
    for filters in (16, 32, 64, 128):  # middle flow: residual separable blocks
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        residual = layers.BatchNormalization()(residual)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, residual])
    x = layers.Conv2D(spec.num_classes, 3, padding="same")(x)  # exit flow
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(spec.dropout)(x)
    x = layers.Dense(spec.num_classes)(x)
    outputs = layers.Activation("softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mini_xception")


def _transfer_input(spec: ModelSpec):
    """ImageNet backbones want 3 channels and >= 32 px: expand grey faces in-model."""
    inputs, x = _input_and_stem(spec, scale="none")
    if spec.channels == 1:
        x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    return inputs, x


def _imagenet_weights(spec: ModelSpec):
    return None if spec.weights in ("none", "", None) else spec.weights


def _backbone(factory, spec: ModelSpec) -> keras.Model:
    """An ImageNet backbone with the requested weights, or random ones if they cannot be fetched."""
    shape = (spec.input_size, spec.input_size, 3)
    weights = _imagenet_weights(spec)
    try:
        return factory(include_top=False, weights=weights, input_shape=shape)
    except Exception as exc:  # keras' get_file raises a bare Exception when offline
        if weights is None:
            raise
        log.warning("cannot load %s weights (%s); training from scratch (weights=none)",
                    weights, str(exc).splitlines()[0][:200])
        return factory(include_top=False, weights=None, input_shape=shape)


@register("resnet50v2")
def resnet50v2(spec: ModelSpec) -> keras.Model:
    """Seed DeepFER: ResNet50V2 with its dropout/BN/flatten/dense-64 head."""
    inputs, x = _transfer_input(spec)
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(x)
    base = _backbone(keras.applications.ResNet50V2, spec)
    x = base(x)
    x = layers.Dropout(0.25)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inputs, _head(x, spec), name="resnet50v2")


@register("efficientnetb0")
def efficientnetb0(spec: ModelSpec) -> keras.Model:
    """Seed 004: EfficientNetB0 with GAP, Dense 512/256 + BN + dropout."""
    inputs, x = _transfer_input(spec)  # EfficientNet rescales [0, 255] itself
    base = _backbone(keras.applications.EfficientNetB0, spec)
    x = base(x)
    x = layers.GlobalAveragePooling2D()(x)
    for units, drop in ((512, 0.4), (256, 0.3)):
        x = layers.Dense(units, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(drop)(x)
    return keras.Model(inputs, _head(x, spec), name="efficientnetb0")
