"""Encoders: one interface, a registry of backbones, trained and aligned models."""

from fashionlens.encoders.base import Encoder, ModelCard, Preprocess, l2_normalize
from fashionlens.encoders.registry import (
    UnknownEncoderError,
    create,
    list_encoders,
    load_run_encoder,
    register,
    register_run_loader,
)

__all__ = [
    "Encoder",
    "ModelCard",
    "Preprocess",
    "UnknownEncoderError",
    "create",
    "l2_normalize",
    "list_encoders",
    "load_run_encoder",
    "register",
    "register_run_loader",
]
