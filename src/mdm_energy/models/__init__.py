"""Small masked diffusion models trained here: the transformer denoiser and its checkpoints."""

from .transformer import KVCache, MDMConfig, MDMTransformer, ModelDenoiser, as_denoiser, load_config, load_model, save_model

__all__ = ["MDMConfig", "MDMTransformer", "KVCache", "ModelDenoiser", "save_model", "load_config", "load_model",
           "as_denoiser"]
