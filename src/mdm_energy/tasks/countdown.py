"""``countdown``: reach a target from 3–5 numbers with + − × ÷, each number used at most once.

Many expressions are valid for one instance (only instances with at least two distinct solutions are
generated), and the tokens of a valid answer depend on one another — committing several at once can
pair a first half from one solution with a second half from another. Prompt ``"3 7 12 25:37"``,
answer e.g. ``"12+25"``; intermediate results stay positive integers (÷ only when exact).
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from fractions import Fraction
from typing import Iterator

from .base import CharVocab, Example, Task, split_of

__all__ = ["CountdownTask", "solve", "check_expression"]

_OPS = "+-*/"


def solve(numbers: list[int], cap: int = 3) -> dict[int, list[str]]:
    """Reachable values -> up to ``cap`` expressions, by a dynamic programme over subsets of the numbers."""
    n = len(numbers)
    table: dict[int, dict[int, list[str]]] = {1 << i: {v: [str(v)]} for i, v in enumerate(numbers)}
    for mask in range(1, 1 << n):
        if mask in table and bin(mask).count("1") == 1:
            continue
        out: dict[int, list[str]] = {}
        sub = (mask - 1) & mask
        while sub:
            rest = mask ^ sub
            if sub < rest and sub in table and rest in table:
                for a, ea in table[sub].items():
                    for b, eb in table[rest].items():
                        for (x, ex), (y, ey) in (((a, ea), (b, eb)), ((b, eb), (a, ea))):
                            cands = [(x + y, "+"), (x * y, "*")] if x <= y else []
                            if x > y:
                                cands.append((x - y, "-"))
                            if y > 1 and x % y == 0:
                                cands.append((x // y, "/"))
                            for v, op in cands:
                                if v > 999:
                                    continue
                                slot = out.setdefault(v, [])
                                for s1 in ex[:1]:
                                    for s2 in ey[:1]:
                                        if len(slot) < cap:
                                            slot.append(f"({s1}{op}{s2})")
            sub = (sub - 1) & mask
        if out:
            table[mask] = out
    merged: dict[int, list[str]] = {}
    for mask, vals in table.items():
        for v, exprs in vals.items():
            slot = merged.setdefault(v, [])
            for e in exprs:
                e = e[1:-1] if e.startswith("(") and e.endswith(")") else e
                if e not in slot and len(slot) < 8:
                    slot.append(e)
    return merged


def check_expression(expr: str, numbers: list[int], target: int) -> bool:
    """Well-formed (integers, + − × ÷, parentheses), each given number used at most once, value = target."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return False
    used: list[int] = []

    def ev(node) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            x, y = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return x + y
            if isinstance(node.op, ast.Sub):
                return x - y
            if isinstance(node.op, ast.Mult):
                return x * y
            if y == 0:
                raise ZeroDivisionError
            return x / y
        raise ValueError("not allowed")

    try:
        value = ev(tree.body)
    except (ValueError, ZeroDivisionError, RecursionError):
        return False
    return value == target and not (Counter(used) - Counter(numbers))


class CountdownTask(Task):
    name = "countdown"
    metric = "valid expressions"
    prompt_len = 18
    gen_len = 24
    max_answer = 24  # the longest answer drawn (the window of the original task)

    def __init__(self) -> None:
        self.vocab = CharVocab("0123456789+-*/() :")

    def _instance(self, rng: random.Random) -> "Example | None":
        k = rng.choice((3, 3, 4, 4, 5))
        numbers = [rng.randint(1, 25) for _ in range(k)]
        sols = solve(numbers)
        targets = [t for t, exprs in sols.items() if 10 <= t <= 99 and len(exprs) >= 2 and t not in numbers]
        if not targets:
            return None
        target = rng.choice(sorted(targets))
        answer = rng.choice(sorted(e for e in sols[target] if len(e) <= self.max_answer))
        prompt = " ".join(map(str, numbers)) + f":{target}"
        return Example(prompt, answer, {"numbers": numbers, "target": target})

    def stream(self, split: str, seed: int = 0) -> Iterator[Example]:
        """Instances whose prompt hashes to the split (:func:`~mdm_energy.tasks.base.split_of`), seeded."""
        rng = random.Random(f"countdown-{split}-{seed}")
        while True:
            ex = self._instance(rng)
            if ex is not None and split_of(ex.prompt) == split:
                yield ex

    def score(self, example: Example, output: str) -> float:
        return float(check_expression(output, example.info["numbers"], example.info["target"]))


class CountdownLongTask(CountdownTask):
    """Countdown in a window three times longer (72 positions): the same problems and answers, so an answer
    fills at most a third of the window and end-of-sequence padding the rest — the shape of the paper's code
    benchmarks, where most of a fixed generation window is EOS. A separate model is trained for it."""

    name = "countdown-long"
    gen_len = 72
