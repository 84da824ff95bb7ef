"""Task generators, layouts and metrics against hand-checked cases and independent checks."""

from __future__ import annotations

import itertools

import pytest
import torch

from mdm_energy.tasks import EOS, PAD, CountdownTask, SudokuTask, check_expression, get_task, is_valid_solution
from mdm_energy.tasks.sudoku import solve_count

SOLVED = ("534678912672195348198342567859761423426853791713924856961537284287419635345286179")


@pytest.mark.parametrize(
    "expr,numbers,target,ok",
    [
        ("25+12", [3, 7, 12, 25], 37, True),
        ("(7-3)*12", [3, 7, 12, 25], 48, True),
        ("25/5+3", [3, 5, 25], 8, True),
        ("25+25-13", [25, 12, 13], 37, False),  # 25 used twice
        ("3*(7", [3, 7], 21, False),  # malformed
        ("3*7", [3, 7], 22, False),  # wrong value
        ("7/2*2", [7, 2, 2], 7, True),  # exact rational arithmetic
        ("__import__('os')", [1], 1, False),
        ("2**5", [2, 5], 32, False),  # only + - * /
        ("", [1], 1, False),
    ],
)
def test_countdown_metric(expr, numbers, target, ok):
    assert check_expression(expr, numbers, target) is ok


def test_countdown_instances_have_several_solutions_and_split_cleanly():
    task = CountdownTask()
    train, test = task.examples("train", 300), task.examples("test", 40)
    assert not {e.prompt for e in train} & {e.prompt for e in test}
    from fractions import Fraction
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def values(nums: tuple) -> frozenset:  # every value of every expression tree over exactly these numbers
        if len(nums) == 1:
            return frozenset({Fraction(nums[0])})
        out = set()
        for mask in range(1, (1 << len(nums)) - 1):
            left = tuple(n for i, n in enumerate(nums) if mask >> i & 1)
            right = tuple(n for i, n in enumerate(nums) if not mask >> i & 1)
            for x in values(left):
                for y in values(right):
                    out |= {x + y, x - y, x * y}
                    if y != 0:
                        out.add(x / y)
        return frozenset(out)

    for e in train[:60]:
        assert task.score(e, e.answer) == 1.0
        numbers, target = e.info["numbers"], e.info["target"]
        assert 3 <= len(numbers) <= 5 and 10 <= target <= 99
        if len(numbers) <= 4:  # an independent brute force over all expression trees reaches the target
            subsets = {tuple(sorted(c)) for k in range(1, len(numbers) + 1) for c in itertools.combinations(numbers, k)}
            assert any(Fraction(target) in values(sub) for sub in subsets)
        from mdm_energy.tasks.countdown import solve

        sols = solve(numbers)[target]
        assert len(set(sols)) >= 2 and all(check_expression(x, numbers, target) for x in sols)
    assert task.examples("train", 5) == task.examples("train", 5)  # seeded


def test_sudoku_metric_hand_checked():
    givens = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
    assert is_valid_solution(SOLVED, givens)
    swapped = SOLVED[1] + SOLVED[0] + SOLVED[2:]
    assert not is_valid_solution(swapped, givens)  # breaks a given and a row
    wrong_given = "4" + givens[1:]
    assert not is_valid_solution(SOLVED, wrong_given)
    assert not is_valid_solution(SOLVED[:80], givens)
    assert not is_valid_solution(SOLVED[:80] + "0", givens)
    assert solve_count([int(c) if c != "." else 0 for c in givens], 2) == 1


def test_sudoku_generator_levels():
    task = SudokuTask()
    for e in task.examples("train", 8):
        assert task.score(e, e.answer) == 1.0
        givens = 81 - e.prompt.count(".")
        level = e.info["level"]
        if level == "multi":
            assert e.info["solutions"] >= 2
        else:
            assert e.info["solutions"] == 1 and givens == {"easy": 40, "medium": 34, "hard": 28}[level]


def test_layout_pads_prompts_and_answers():
    task = CountdownTask()
    ex = task.examples("train", 3)
    ids, prompt_mask = task.encode(ex)
    assert ids.shape == (3, task.prompt_len + task.gen_len) and prompt_mask[:, : task.prompt_len].all()
    for b, e in enumerate(ex):
        row = ids[b].tolist()
        assert task.vocab.decode(row[task.prompt_len:]) == e.answer
        assert row[task.prompt_len + len(e.answer):] == [EOS] * (task.gen_len - len(e.answer))
        assert row[: task.prompt_len - len(e.prompt)] == [PAD] * (task.prompt_len - len(e.prompt))
    assert torch.equal(torch.tensor(task.prompts(ex)), ids[:, : task.prompt_len])
    with pytest.raises(ValueError, match="'sokoban'"):
        get_task("sokoban")


@pytest.mark.parametrize(
    "prompt,generated,ok",
    [
        ("def f(x):", "    y = x + 1\n    return y", True),
        ("    if a:", "        b = 1\n    else:", True),  # dedented, and the open block gets a pass
        ("for i in range(3):", "    print(i", False),  # unbalanced
        ("x = [1,", "     2,\n     3]", True),
        ("import os", "import sys\nreturn", False),  # return outside a function
        ("class A:", "    pass\n  x = 1", False),  # bad dedent
    ],
)
def test_pycode_compile_framing(prompt, generated, ok):
    from mdm_energy.tasks import compiles

    assert compiles(prompt, generated) is ok


@pytest.mark.parametrize(
    "prompt,generated,code",
    [
        ("def f(x):", "", False),  # EOS at once: compiles (the framing adds a pass) but writes nothing
        ("def f(x):", "    \n  \n", False),  # whitespace only
        ("x = 1", "# a comment\n    # another", False),  # comments only
        ("x = 1", "y = 2  # and a comment", True),
        ("x = foo(a,", "      b)", True),  # only closes the prompt's call: still code
        ('s = """abc', 'def"""', True),  # only ends the prompt's string: still code
        ("class A:", '    """Doc."""', True),  # a docstring is a statement
        ("if x:", "    pass", True),  # an explicit pass is code, the framing's is not
        ("x = f()", "y = g()  # Example:", True),  # a colon in a comment opens no block (v1 appended a pass: 0)
        ("if a:  # why:", "    b = 1\nelse:", True),  # a real block colon after the comment's still gets its pass
    ],
)
def test_pycode_scores_only_answers_that_hold_code(prompt, generated, code):
    from mdm_energy.tasks import PyCodeTask, adds_code, compiles
    from mdm_energy.tasks.base import Example

    assert compiles(prompt, generated)  # all of them compile: version 1 scored every one 1
    assert adds_code(prompt, generated) is code
    assert PyCodeTask().score(Example(prompt, "x = 0"), generated) == float(code)


def test_pycode_rewards_no_empty_answer_on_the_test_set():
    from mdm_energy.tasks import PyCodeTask

    task = PyCodeTask()
    assert task.score_version == 2
    test = task.examples("test", 300)
    assert all(task.score(e, e.answer) == 1.0 for e in test)  # every reference scores 1
    for empty in ("", "\n\n", "# nothing"):
        assert sum(task.score(e, empty) for e in test) == 0  # version 1 scored 278 of these 300 at 1 for ""
    assert not any(all(ln.lstrip().startswith("#") for ln in e.answer.split("\n")) for e in test)


def test_pycode_uses_stdlib_files_split_by_file():
    from mdm_energy.tasks import PyCodeTask, unigram_entropy

    task = PyCodeTask()
    train, test = task.examples("train", 300), task.examples("test", 120)
    assert len(train) == 300 and len(test) == 120
    assert not {e.info["file"] for e in train} & {e.info["file"] for e in test}
    assert all(task.score(e, e.answer) == 1.0 for e in train[:100])
    assert unigram_entropy(["aaaa"]) == 0.0 and abs(unigram_entropy(["ab"]) - 1.0) < 1e-12
    assert 3.0 < unigram_entropy([e.answer for e in test]) < 6.5
    ids, _ = task.encode(test[:4])  # every reference fits the window
    assert ids.shape == (4, task.prompt_len + task.gen_len)


def test_sudoku_symmetries_keep_puzzles_valid_unique_and_in_the_train_split():
    from mdm_energy.tasks import SudokuTask, is_valid_solution
    from mdm_energy.tasks.base import split_of
    from mdm_energy.tasks.sudoku import solve_count

    task = SudokuTask()
    stream = task.train_stream(seed=1, symmetries=6)
    examples = [next(stream) for _ in range(40)]
    assert len({e.prompt for e in examples}) == 40  # copies are distinct puzzles
    for ex in examples:
        assert split_of(ex.prompt) == "train"
        assert is_valid_solution(ex.answer, ex.prompt)  # the transformed solution solves the transformed puzzle
        grid = [int(c) if c != "." else 0 for c in ex.prompt]
        assert min(solve_count(grid, 3), 3) == min(ex.info["solutions"], 3)  # as many solutions as the original


def test_pycode_trains_on_every_fitting_window_and_scores_only_compiling_ones():
    from mdm_energy.tasks import PyCodeTask, compiles

    task = PyCodeTask()
    train = list(itertools.islice(task.train_stream(0), 3000))
    assert any(not compiles(e.prompt, e.answer) or not all(ln.strip() for ln in e.answer.split("\\n")) for e in train)
    assert all(len(e.prompt) <= task.prompt_len and len(e.answer) <= task.gen_len for e in train)
    assert all(compiles(e.prompt, e.answer) for e in task.examples("test", 200))


def test_countdown_long_has_the_problems_of_countdown_in_a_longer_window():
    from mdm_energy.tasks import get_task

    short, long = get_task("countdown"), get_task("countdown-long")
    for split in ("train", "valid", "test"):
        assert short.examples(split, 30, seed=2) == long.examples(split, 30, seed=2)
    ids, _ = long.encode(long.examples("test", 4))
    assert ids.shape[1] == long.prompt_len + 72 and long.gen_len == 3 * short.gen_len
