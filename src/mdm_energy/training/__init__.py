"""Training small MDMs (issue #6): LLaDA's loss, AdamW + warm-up/cosine, exactly resumable checkpoints."""

from .charlm import perplexity, train_reference_lm
from .trainer import TrainConfig, load_trainer, lr_at, mdm_loss, save_trainer, train

__all__ = ["TrainConfig", "mdm_loss", "lr_at", "train", "save_trainer", "load_trainer", "train_reference_lm", "perplexity"]
