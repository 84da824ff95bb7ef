"""A tiny LLaDA-like masked diffusion model and a character tokenizer, built offline for tests.

The model is bidirectional (no causal mask), returns ``.logits`` and round-trips through
``save_pretrained``/``from_pretrained``; saved with ``register_for_auto_class`` it loads back through
``AutoModel.from_pretrained(path, trust_remote_code=True)`` exactly as LLaDA's remote code does.
"""

from __future__ import annotations

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 +=?:.\n")
SPECIALS = ["<pad>", "<unk>", "<eos>", "<mask>"]


class TinyMDMConfig(PretrainedConfig):
    model_type = "tiny-llada"

    def __init__(self, vocab_size=48, hidden_size=32, num_layers=2, num_heads=2, max_position_embeddings=96,
                 mask_token_id=3, eos_token_id=2, pad_token_id=0, **kwargs):
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)
        self.vocab_size, self.hidden_size, self.num_layers, self.num_heads = vocab_size, hidden_size, num_layers, num_heads
        self.max_position_embeddings, self.mask_token_id = max_position_embeddings, mask_token_id


class TinyDreamConfig(TinyMDMConfig):
    model_type = "tiny-dream"

    def __init__(self, **kwargs):  # explicit: transformers 5 does not inherit a config's __init__ implicitly
        super().__init__(**kwargs)


class TinyMDM(PreTrainedModel):
    config_class = TinyMDMConfig

    def __init__(self, config):
        super().__init__(config)
        self.emb = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.pos = torch.nn.Embedding(config.max_position_embeddings, config.hidden_size)
        layer = torch.nn.TransformerEncoderLayer(config.hidden_size, config.num_heads, 2 * config.hidden_size,
                                                 dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.emb(input_ids) + self.pos(pos)
        pad = None if attention_mask is None else ~attention_mask.bool()
        return MaskedLMOutput(logits=self.head(self.encoder(h, src_key_padding_mask=pad)))


class TinyDream(TinyMDM):
    config_class = TinyDreamConfig


def tiny_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
                                   mask_token="<mask>")


def save_tiny(path, dream: bool = False, seed: int = 0):
    """Save a randomly initialised tiny model (with its code) and the tokenizer to ``path``."""
    torch.manual_seed(seed)
    cls, cfg = (TinyDream, TinyDreamConfig) if dream else (TinyMDM, TinyMDMConfig)
    cfg.register_for_auto_class()
    cls.register_for_auto_class("AutoModel")
    model = cls(cfg(vocab_size=len(SPECIALS) + len(CHARS)))
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return model
