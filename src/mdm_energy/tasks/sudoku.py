"""``sudoku``: fill the 81 cells of a 9×9 puzzle; puzzles have a unique solution or, deliberately, several.

A bitmask backtracking solver (most-constrained cell first) generates full grids, counts solutions
(up to a cap) to keep puzzles unique while removing givens, and checks answers. Difficulty is the
number of givens: ``easy`` 40, ``medium`` 34, ``hard`` 28; a ``multi`` puzzle drops further givens
without the uniqueness check, so several grids are valid. Prompt: the 81 cells with ``.`` for blanks;
answer: the 81 digits. Metric: the answer is a valid grid that agrees with every given.
"""

from __future__ import annotations

import random
from typing import Iterator

from .base import CharVocab, Example, Task, split_of

__all__ = ["SudokuTask", "solve_count", "random_grid", "is_valid_solution", "relabel"]

ALL = 0x3FE  # bits 1..9
_PEERS = []
for _c in range(81):
    r, c = divmod(_c, 9)
    box = (r // 3) * 3 * 9 + (c // 3) * 3
    peers = {r * 9 + k for k in range(9)} | {k * 9 + c for k in range(9)} | {box + 9 * i + j for i in range(3) for j in range(3)}
    peers.discard(_c)
    _PEERS.append(tuple(sorted(peers)))


def _candidates(grid: list[int], cell: int) -> int:
    used = 0
    for p in _PEERS[cell]:
        used |= 1 << grid[p]
    return ALL & ~used


def solve_count(grid: list[int], limit: int = 2, rng: "random.Random | None" = None, out: "list | None" = None) -> int:
    """Number of solutions of ``grid`` (0 = empty cell), counting up to ``limit``; the first is stored in ``out``."""
    g = list(grid)
    count = 0

    def rec() -> bool:
        nonlocal count
        best, best_mask, best_n = -1, 0, 10
        for cell in range(81):
            if g[cell] == 0:
                m = _candidates(g, cell)
                n = bin(m).count("1")
                if n < best_n:
                    best, best_mask, best_n = cell, m, n
                    if n <= 1:
                        break
        if best < 0:
            count += 1
            if out is not None and not out:
                out.extend(g)
            return count >= limit
        if best_n == 0:
            return False
        digits = [d for d in range(1, 10) if best_mask >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        for d in digits:
            g[best] = d
            if rec():
                return True
        g[best] = 0
        return False

    rec()
    return count


def random_grid(rng: random.Random) -> list[int]:
    """A uniformly shuffled complete, valid grid."""
    out: list[int] = []
    solve_count([0] * 81, limit=1, rng=rng, out=out)
    return out


def is_valid_solution(answer: str, givens: str) -> bool:
    """81 digits 1–9 forming a valid grid and agreeing with every given (``.`` = blank)."""
    if len(answer) != 81 or any(ch not in "123456789" for ch in answer):
        return False
    if any(g != "." and g != a for g, a in zip(givens, answer)):
        return False
    grid = [int(ch) for ch in answer]
    for cell in range(81):
        if any(grid[p] == grid[cell] for p in _PEERS[cell]):
            return False
    return True


def relabel(grid: str, rng: random.Random) -> str:
    """The same puzzle (or solution) under a random symmetry of sudoku — a digit permutation, band, row,
    stack and column permutations and an optional transpose — which keeps it valid and keeps its number of
    solutions. Drawing the same ``rng`` state twice gives the same symmetry (puzzle and solution together)."""
    digits = list("123456789")
    rng.shuffle(digits)
    mapping = {str(k + 1): digits[k] for k in range(9)}
    mapping["."] = "."

    def lines() -> list[int]:
        bands = [0, 1, 2]
        rng.shuffle(bands)
        out = []
        for b in bands:
            inner = [0, 1, 2]
            rng.shuffle(inner)
            out += [3 * b + i for i in inner]
        return out

    rows, cols, transpose = lines(), lines(), rng.random() < 0.5
    cells = [[grid[9 * r + c] for c in cols] for r in rows]
    if transpose:
        cells = [list(col) for col in zip(*cells)]
    return "".join(mapping[ch] for row in cells for ch in row)


LEVELS = {"easy": 40, "medium": 34, "hard": 28}


class SudokuTask(Task):
    name = "sudoku"
    metric = "valid grids"
    prompt_len = 81
    gen_len = 81

    def __init__(self, levels: tuple[str, ...] = ("easy", "medium", "hard", "multi")) -> None:
        self.vocab = CharVocab("123456789.")
        self.levels = levels

    def puzzle(self, rng: random.Random, level: str) -> Example:
        solution = random_grid(rng)
        grid = list(solution)
        target = LEVELS.get(level, LEVELS["hard"])
        cells = list(range(81))
        rng.shuffle(cells)
        givens = 81
        for cell in cells:  # remove givens while the solution stays unique
            if givens <= target:
                break
            keep, grid[cell] = grid[cell], 0
            if solve_count(grid, 2) != 1:
                grid[cell] = keep
            else:
                givens -= 1
        if level == "multi":  # then drop a few more without the check: several valid grids
            extra = [c for c in cells if grid[c]]
            for cell in extra[:6]:
                grid[cell] = 0
        prompt = "".join(str(v) if v else "." for v in grid)
        return Example(prompt, "".join(map(str, solution)), {"givens": prompt, "level": level,
                                                             "solutions": solve_count(grid, 50)})

    def stream(self, split: str, seed: int = 0) -> Iterator[Example]:
        """Puzzles whose prompt hashes to the split, cycling through the levels, seeded."""
        rng = random.Random(f"sudoku-{split}-{seed}")
        kept = 0
        while True:
            ex = self.puzzle(rng, self.levels[kept % len(self.levels)])
            if split_of(ex.prompt) == split:
                kept += 1
                yield ex

    def train_stream(self, seed: int = 0, symmetries: int = 16) -> Iterator[Example]:
        """Training puzzles: each generated puzzle, then ``symmetries`` random symmetric copies of it (an
        isomorphic puzzle with the transformed solution), each kept when its prompt hashes to ``train``.
        A symmetric copy costs ~0.1 ms where a new unique puzzle costs ~25 ms."""
        rng = random.Random(f"sudoku-train-augmented-{seed}")
        for ex in self.stream("train", seed):
            yield ex
            for _ in range(symmetries):
                state = rng.getstate()
                prompt = relabel(ex.prompt, rng)
                rng.setstate(state)
                answer = relabel(ex.answer, rng)
                if split_of(prompt) == "train":
                    yield Example(prompt, answer, {**ex.info, "givens": prompt})

    def score(self, example: Example, output: str) -> float:
        return float(is_valid_solution(output, example.info["givens"]))
