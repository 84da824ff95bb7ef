"""``pycode``: real code no one here wrote — snippets from the Python standard library on this machine.

Each example is one line of a stdlib source file (the prompt, at most 64 characters) and the next three
lines (the answer, at most 96 characters with newlines). Files are split into train/valid/test by a
hash of their path, so no file contributes to two splits.

**Compile framing.** A snippet — the prompt line and the generated lines — is dedented, and if its last
line opens a block (its last code token is a ``:``; one in a trailing comment opens nothing) an indented
``pass`` is appended; it counts as valid (:func:`scores_one`) when the result compiles in ``exec`` mode
**and the generated lines hold code** (:func:`adds_code`: a token other
than comments, blank lines and indentation ends on one of them). Without the second condition an empty
answer — EOS at once, whitespace, or only comments — would score 1 after almost any prompt line, so a
model that stops early would look better than one that writes code (score version 2; version 1 was the
compile test alone, and appended the ``pass`` after a colon in a comment too). Only windows whose *original* text scores 1 are used, so every reference answer
scores 1 and a failure is the model's.

Also reported: the unigram entropy (bits per character) of generated text, which collapses when a
model repeats itself.
"""

from __future__ import annotations

import io
import itertools
import math
import random
import sysconfig
import textwrap
import tokenize
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from .base import CharVocab, Example, Task, check_split, split_of

__all__ = ["PyCodeTask", "compiles", "compiles_framed", "adds_code", "scores_one", "unigram_entropy", "stdlib_files"]

PROMPT_CHARS, ANSWER_CHARS, ANSWER_LINES = 64, 96, 3
_CHARS = "".join(chr(c) for c in range(32, 127)) + "\n"


#: tokens that are not code: comments, line ends and indentation
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def _snippet(prompt_line: str, generated: str) -> "tuple[str, list[tokenize.TokenInfo] | None]":
    """The dedented snippet (prompt line, then the answer) and its tokens (``None`` when Python cannot
    tokenize it: an unclosed string or bracket, a bad dedent — it cannot compile either)."""
    text = textwrap.dedent(prompt_line + "\n" + generated).rstrip("\n")
    try:
        return text, list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text, None


def _compiles(text: str, tokens: "list[tokenize.TokenInfo] | None") -> bool:
    """The compile test of the framing: a snippet whose last code token is a block's ``:`` gets an indented
    ``pass`` (a colon in a trailing comment opens nothing)."""
    if tokens is None:
        return False
    code = [t for t in tokens if t.type not in _NOT_CODE]
    return compiles_framed(text, bool(code) and code[-1].type == tokenize.OP and code[-1].string == ":")


def compiles_framed(text: str, opens_block: bool) -> bool:
    """Whether ``text`` compiles in ``exec`` mode, with an indented ``pass`` after its last line when it
    ``opens_block``."""
    if opens_block:
        last = text.split("\n")[-1]
        text += "\n" + " " * (len(last) - len(last.lstrip()) + 4) + "pass"
    try:
        compile(text, "<snippet>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _adds_code(tokens: "list[tokenize.TokenInfo] | None") -> bool:
    """Some token other than a comment, a line end or indentation *ends* on a generated line (line 2 on)."""
    return tokens is not None and any(t.type not in _NOT_CODE and t.end[0] >= 2 for t in tokens)


def compiles(prompt_line: str, generated: str) -> bool:
    """Whether ``prompt_line`` + ``generated`` compiles under the framing in the module docstring."""
    return _compiles(*_snippet(prompt_line, generated))


def adds_code(prompt_line: str, generated: str) -> bool:
    """Whether the generated lines hold code: some token of the snippet other than a comment, a line end or
    indentation *ends* on a generated line. Ends, so that an answer which only closes what the prompt opened —
    the rest of a string or of a call's arguments — counts. False for an empty, whitespace-only or
    comment-only answer, and for a snippet Python cannot tokenize (it does not compile either)."""
    return _adds_code(_snippet(prompt_line, generated)[1])


def scores_one(prompt_line: str, generated: str) -> bool:
    """The pycode metric (score version 2): the snippet compiles under the framing and the answer holds code."""
    text, tokens = _snippet(prompt_line, generated)
    return _compiles(text, tokens) and _adds_code(tokens)


def unigram_entropy(texts: list[str]) -> float:
    """Entropy in bits per character of the pooled characters of ``texts``."""
    counts = Counter("".join(texts))
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


@lru_cache(maxsize=1)
def stdlib_files() -> tuple[Path, ...]:
    """The standard library's own ``.py`` files on this machine (tests and site-packages excluded), sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idle_test", "lib2to3", "__pycache__"}
    return tuple(sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts)))


class PyCodeTask(Task):
    name = "pycode"
    metric = "compiling snippets"
    score_version = 2  # 2: an answer without code scores 0 (see the module docstring)
    prompt_len = PROMPT_CHARS
    gen_len = ANSWER_CHARS

    def __init__(self) -> None:
        self.vocab = CharVocab(_CHARS)
        self.root = Path(sysconfig.get_paths()["stdlib"])

    def _windows(self, path: Path, scored: bool = True) -> list[Example]:
        """The windows of one file that fit the layout; ``scored`` ones (the evaluation splits) also have three
        non-blank lines and score 1 (compile under the framing, with code), so that every reference answer scores 1."""
        try:
            lines = path.read_text(encoding="utf-8").expandtabs(4).split("\n")
        except (UnicodeDecodeError, OSError):
            return []
        out = []
        for i in range(len(lines) - ANSWER_LINES):
            prompt, body = lines[i], lines[i + 1:i + 1 + ANSWER_LINES]
            answer = "\n".join(body)
            if not prompt.strip() or len(prompt) > PROMPT_CHARS or len(answer) > ANSWER_CHARS:
                continue
            if any(ch not in _CHARS for ch in prompt + answer):
                continue
            if not scored or (all(ln.strip() for ln in body) and scores_one(prompt, answer)):
                out.append(Example(prompt, answer, {"file": str(path.relative_to(self.root)), "line": i + 1}))
        return out

    def _files(self, split: str, seed: int) -> tuple[list[Path], random.Random]:
        files = [p for p in stdlib_files() if split_of(str(p.relative_to(self.root))) == split]
        rng = random.Random(f"pycode-{split}-{seed}")
        rng.shuffle(files)
        return files, rng

    def _take(self, split: str, seed: int, per_file: int, scored: bool = True) -> Iterator[Example]:
        files, rng = self._files(split, seed)
        for path in files:
            windows = self._windows(path, scored)
            rng.shuffle(windows)
            yield from windows[:per_file]

    def stream(self, split: str, seed: int = 0) -> Iterator[Example]:
        """Up to two windows of each file of the split, files in a seeded order (finite)."""
        return self._take(split, seed, 2)

    def train_stream(self, seed: int = 0) -> Iterator[Example]:
        """Every window of every training file that fits the layout — compiling or not, blank lines allowed
        (about 74,000 here, where the scored windows are about 10,600) — files in a seeded order (finite)."""
        return self._take("train", seed, 10**9, scored=False)

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """``n`` windows spread over as many files as it takes (more windows per file when ``n`` is large)."""
        files, _ = self._files(check_split(split), seed)
        per_file = max(1, 2 * -(-n // max(1, len(files))))
        return list(itertools.islice(self._take(split, seed, per_file), n))

    def score(self, example: Example, output: str) -> float:
        """1 if the prompt line and ``output`` compile under the framing and ``output`` holds code, else 0."""
        return float(scores_one(example.prompt, output))
