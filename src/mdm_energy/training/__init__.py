"""Training small MDMs: LLaDA's loss, AdamW + warm-up/cosine, exactly resumable checkpoints (docs/design.md §7)."""

from .charlm import perplexity, train_reference_lm
from .trainer import (
    TrainConfig,
    TrainState,
    TrainSummary,
    check_device,
    fit,
    load_trainer,
    lr_at,
    make_optimizer,
    mdm_loss,
    open_state,
    save_trainer,
    train,
    validation_loss,
)

__all__ = ["TrainConfig", "TrainState", "TrainSummary", "check_device", "mdm_loss", "lr_at", "make_optimizer", "fit", "train",
           "open_state", "save_trainer", "load_trainer", "train_reference_lm", "perplexity", "validation_loss"]
