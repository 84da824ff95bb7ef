"""The task interface: data, a fixed prompt/answer layout padded with EOS, a character vocabulary, a metric.

Every example is laid out as ``[prompt, left-padded to prompt_len | answer, then EOS up to gen_len]``,
as LLaDA pads its answers: the model learns to end an answer by filling the rest of the window with
EOS, and a sampler generates the whole window.
"""

from __future__ import annotations

import hashlib
import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

import torch

__all__ = ["SPECIALS", "PAD", "EOS", "MASK", "SPLITS", "check_split", "split_of", "CharVocab", "Example", "Task"]

SPECIALS = ("<pad>", "<eos>", "<mask>")
SPLITS = ("train", "valid", "test")
PAD, EOS, MASK = 0, 1, 2


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def split_of(prompt: str) -> str:
    """The split an instance belongs to, by a hash of its prompt: ``test`` 1 in 10, ``valid`` (for tuning)
    1 in 10, ``train`` the rest — so the three never share an instance, whatever the seeds."""
    bucket = int(hashlib.sha1(prompt.encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else ("valid" if bucket == 1 else "train")


class CharVocab:
    """Character-level ids: the three specials, then the task's characters."""

    def __init__(self, chars: str) -> None:
        self.chars = "".join(dict.fromkeys(chars))
        self.index = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}
        self.size = len(SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the task's vocabulary") from None

    def decode(self, ids) -> str:
        """Text up to the first EOS; specials elsewhere are dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.chars[i - len(SPECIALS)])
        return "".join(out)


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str
    info: "dict | None" = None  # what the metric needs beyond the prompt (e.g. the givens)


class Task(ABC):
    """A generation task with an exact metric (higher is better)."""

    name: str
    prompt_len: int
    gen_len: int
    vocab: CharVocab

    @abstractmethod
    def stream(self, split: str, seed: int = 0) -> Iterator[Example]:
        """The examples of ``split`` in their seeded order, generated one at a time (``split`` already checked)."""

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """The first ``n`` examples of ``split`` (``train``, ``valid`` or ``test``; disjoint by construction)."""
        return list(itertools.islice(self.stream(check_split(split), seed), n))

    def train_stream(self, seed: int = 0) -> Iterator[Example]:
        """The examples training draws from: the ``train`` split, possibly enlarged by symmetries that keep
        an example valid (never crossing into another split)."""
        return self.stream("train", seed)

    @abstractmethod
    def score(self, example: Example, output: str) -> float:
        """The metric of one generated answer (1 = valid)."""

    metric: str = "valid"
    #: the version of :meth:`score` (and of which examples it is scored on): raised whenever either changes
    score_version: int = 1

    @property
    def score_tag(self) -> str:
        """``""`` at score version 1, else ``"sv<version>"``: appended to the name of everything stored that
        depends on the score — tuning objectives (so a study's stored item scores), held-out pools, the
        benchmarks' cached cells and tuned schedules — so that nothing measured under an older rule is reused."""
        return f"sv{self.score_version}" if self.score_version > 1 else ""

    def encode(self, examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(B, prompt_len + gen_len)`` and the prompt mask (prompt tokens and their padding)."""
        B, P, L = len(examples), self.prompt_len, self.gen_len
        ids = torch.full((B, P + L), EOS, dtype=torch.long)
        ids[:, :P] = PAD
        for b, ex in enumerate(examples):
            p, a = self.vocab.encode(ex.prompt), self.vocab.encode(ex.answer)
            if len(p) > P or len(a) > L:
                raise ValueError(f"example does not fit the window ({len(p)}/{P}, {len(a)}/{L}): {ex.prompt!r}")
            ids[b, P - len(p):P] = torch.tensor(p)
            ids[b, P:P + len(a)] = torch.tensor(a)
        prompt_mask = torch.zeros((B, P + L), dtype=torch.bool)
        prompt_mask[:, :P] = True
        return ids, prompt_mask

    def prompts(self, examples: list[Example]) -> list[list[int]]:
        """Prompt ids, left-padded with PAD to ``prompt_len`` (so every window starts at the same place)."""
        out = []
        for ex in examples:
            p = self.vocab.encode(ex.prompt)
            out.append([PAD] * (self.prompt_len - len(p)) + p)
        return out
