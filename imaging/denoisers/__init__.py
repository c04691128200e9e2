"""Learned denoisers for RED-PSM: a DnCNN, its weights files, inference and training.

Public API::

    from imaging.denoisers import load_denoiser, denoise_frames
    model = load_denoiser("default")            # shipped weights, imaging/data/denoiser/
    clean = denoise_frames(model, frames)       # torch (P, H, W) -> (P, H, W)

The shipped default expects frames whose object maximum is about 1 (the scale the
training images had); scale frames accordingly before calling it.
"""

from .dncnn import DnCNN, ensemble
from .inference import denoise_frames
from .training import train_denoiser
from .training_data import generate_static_objects, load_image_files
from .weights import SHIPPED_DENOISERS, describe_module, load_denoiser, save_denoiser, save_ensemble

__all__ = [
    "DnCNN",
    "SHIPPED_DENOISERS",
    "denoise_frames",
    "describe_module",
    "ensemble",
    "generate_static_objects",
    "load_denoiser",
    "load_image_files",
    "save_denoiser",
    "save_ensemble",
    "train_denoiser",
]
