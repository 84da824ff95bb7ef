"""A model folder on disk, ready to generate from text: one of our task checkpoints or a Hugging Face dLLM.

:func:`load_local_model` looks at the folder's ``config.json``: our checkpoints (``model.safetensors`` with
``d_model`` and ``mask_id`` in the config) use their task's character vocabulary and prompt layout;
anything else is loaded with ``transformers`` (``AutoModel`` and its tokenizer; the folder's own code only with
``trust_remote_code``) — LLaDA,
Dream or any masked LM. Nothing is downloaded: the folder must hold the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["LocalModel", "load_local_model"]


@dataclass
class LocalModel:
    """A denoiser with the text side of its model: prompt ids, decoded answers, one token as text."""

    kind: str  # "checkpoint" or "huggingface"
    denoiser: object
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]
    token_text: Callable[[int], str]
    gen_length: int
    stops: set[int]
    device: str = "cpu"
    task: "str | None" = None  # the task of one of our checkpoints
    encode_answer: "Callable[[str, int], list[int]] | None" = None  # an answer as ``length`` ids, EOS after it
    #: a uniform-noise model's own decoding (DiffusionGemma), ``(prompt ids, gen_length, sampler, options,
    #: generator, callback) -> UniformOutput``; ``None`` for masked models (their samplers run on ``denoiser``)
    uniform: "Callable | None" = None


def _fill(ids: list[int], length: int, eos: int, what: str) -> list[int]:
    if len(ids) > length:
        raise ValueError(f"{what} of {len(ids)} tokens is longer than the window of {length}")
    return ids + [eos] * (length - len(ids))


def _task_of(folder: Path, vocab_size: int, max_len: int) -> str:
    """The task a checkpoint was trained for: from its trainer log, else the one task whose layout fits."""
    from ..tasks import TASKS, get_task

    meta = folder / "trainer.json"
    if meta.is_file():
        try:
            name = json.loads(meta.read_text())["config"]["task"]
            if name in TASKS:
                return name
        except (ValueError, KeyError, TypeError):
            pass
    fits = [n for n in TASKS if get_task(n).vocab.size == vocab_size and get_task(n).prompt_len + get_task(n).gen_len <= max_len]
    if len(fits) != 1:
        raise ValueError(f"cannot tell which task the checkpoint {str(folder)!r} was trained for")
    return fits[0]


def load_local_model(folder: "str | Path", *, chat: "bool | None" = None, device: str = "cpu",
                     trust_remote_code: bool = False) -> LocalModel:
    """The model in ``folder`` (``ValueError`` naming the folder when there is none). A Hugging Face folder that
    ships its own code is loaded only with ``trust_remote_code`` (the user's ``--trust-remote-code``)."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"model folder {str(path)!r} does not exist")
    config = path / "config.json"
    if not config.is_file():
        raise ValueError(f"no model in {str(path)!r} (no config.json)")
    try:
        data = json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(config)!r} is not valid JSON ({exc})") from None
    if isinstance(data, dict) and "d_model" in data and "mask_id" in data:
        return _our_checkpoint(path, device)
    if isinstance(data, dict) and data.get("model_type") == "diffusion_gemma":  # its fields, before any weights load
        from .diffusion_gemma import check_config

        check_config(data)
    return _huggingface(path, chat, device, trust_remote_code)


def _our_checkpoint(path: Path, device: str) -> LocalModel:
    from ..models import as_denoiser, load_model
    from ..tasks import get_task
    from ..tasks.base import EOS, PAD, SPECIALS

    model = load_model(path, device)
    task = get_task(_task_of(path, model.config.vocab_size, model.config.max_len))

    def encode(prompt: str) -> list[int]:
        ids = task.vocab.encode(prompt)  # ValueError names a character outside the vocabulary
        if len(ids) > task.prompt_len:
            raise ValueError(f"prompt of {len(ids)} characters is longer than the {task.name} task's {task.prompt_len}")
        return [PAD] * (task.prompt_len - len(ids)) + ids

    def token_text(i: int) -> str:
        return "⏎" if i == EOS else ("" if i < len(SPECIALS) else task.vocab.chars[i - len(SPECIALS)])

    def encode_answer(text: str, length: int) -> list[int]:
        return _fill(task.vocab.encode(text), length, EOS, "answer")

    return LocalModel("checkpoint", as_denoiser(model), encode, task.vocab.decode, token_text, task.gen_len, {EOS}, device,
                      task=task.name, encode_answer=encode_answer)


def _huggingface(path: Path, chat: "bool | None", device: str, trust_remote_code: bool) -> LocalModel:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ValueError("loading a Hugging Face model needs transformers: pip install 'mdm-energy[hf]'") from None
    from .huggingface import denoiser_for, encode_prompts, load_pretrained, model_family, stop_ids, trim_at_stop

    model, tokenizer = load_pretrained(str(path), trust_remote_code=trust_remote_code)
    model = model.to(device).eval()
    family = model_family(model)
    den = denoiser_for(model, tokenizer, family)
    stops = stop_ids(model, tokenizer, family)
    eos = den.eos_id if den.eos_id is not None else (min(stops) if stops else None)
    uniform = None
    if family == "diffusion_gemma":
        from .diffusion_gemma import decode_with

        stops = set(den.stop_ids)
        uniform = decode_with(model, den)

    def encode_answer(text: str, length: int) -> list[int]:
        if eos is None:
            raise ValueError(f"the model in {str(path)!r} has no end token to fill the window after an answer")
        return _fill(tokenizer(text, add_special_tokens=False)["input_ids"], length, int(eos), "answer")

    return LocalModel(
        "huggingface", den,
        encode=lambda prompt: encode_prompts(tokenizer, [prompt], chat)[0],
        decode=lambda ids: tokenizer.decode(trim_at_stop(list(ids), stops), skip_special_tokens=True),
        token_text=lambda i: tokenizer.decode([i]),
        gen_length=128, stops=stops, device=device, encode_answer=encode_answer, uniform=uniform,
    )
