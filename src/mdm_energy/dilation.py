r"""The dilated groups of DUS (Dilated Unmasking Scheduler, Luxembourg, Permuter & Nachmani 2025), torch-free.

A block of :math:`B` positions (offsets :math:`0 \dots B-1`) is split into groups of positions far apart, one
group per model call. With base :math:`a` (``dilation``) and skip :math:`e` (``dilation_skip``) the first
stride is :math:`s_1 = \lfloor B / a^e \rfloor` and each next one :math:`s_{j+1} = \lfloor s_j / a \rfloor`
while it is at least 1; group :math:`j` holds the offsets :math:`i` with :math:`i \bmod s_j = 0` that no
earlier group holds (a stride that adds nothing adds no group). Offsets no stride reached (when the strides
jump over 1, e.g. :math:`a = 3`, :math:`s = 2 \to 0`) form one more group. Last, when the last group is
smaller than the one before it, the two are merged (the authors' ``merge_last_level``). With :math:`a = 1`
the block is one group.

For :math:`B = 8`, :math:`a = 2`: :math:`\{0, 4\}, \{2, 6\}, \{1, 3, 5, 7\}`; for :math:`B = 2^m` the
groups have sizes :math:`2, 2, 4, \dots, B/2`, i.e. :math:`\log_2 B` calls. For :math:`B = 12`:
:math:`\{0, 6\}, \{3, 9\}` and the other eight; for :math:`B = 5`: :math:`\{0, 2, 4\}` and :math:`\{1, 3\}`,
merged into one call.

The groups depend on :math:`B`, :math:`a` and :math:`e` only — never on the model — so the order in which
DUS reveals a block is fixed before it runs (:func:`dilated_order`).
"""

from __future__ import annotations

from ._parse import positive_int

__all__ = ["check_dilation", "dilated_groups", "dilated_order", "order_groups"]


def check_dilation(length: int, base: int, skip: int) -> None:
    """Refuse (``ValueError``, one line) a dilation whose first stride :math:`\\lfloor B / a^e \\rfloor` would be 0
    (the authors' code then reveals the whole block in one call, silently); a block of one position has nothing
    to dilate and is always one group."""
    if base > 1 and length > 1 and base**skip > length:
        raise ValueError(f"dilation {base} with dilation_skip {skip} does not fit a block of {length} positions: "
                         f"the first stride {length} // {base}**{skip} would be 0 (need {base}**{skip} <= {length})")


def dilated_groups(length: int, base: int = 2, skip: int = 1) -> list[list[int]]:
    """The DUS groups of a block of ``length`` positions (offsets), in the order they are revealed (module
    docstring); each group ascending except a merged last one (its two parts each ascending)."""
    length, base, skip = positive_int(length, "block length"), positive_int(base, "dilation"), positive_int(skip, "dilation_skip")
    check_dilation(length, base, skip)
    if base == 1 or length == 1:
        return [list(range(length))]
    groups: list[list[int]] = []
    taken = [False] * length
    stride = length // base**skip
    while stride >= 1:
        group = [i for i in range(0, length, stride) if not taken[i]]
        if group:
            groups.append(group)
            for i in group:
                taken[i] = True
        stride //= base
    rest = [i for i in range(length) if not taken[i]]
    if rest:
        groups.append(rest)
    if len(groups) >= 2 and len(groups[-1]) < len(groups[-2]):
        last = groups.pop()
        groups[-1] = groups[-1] + last
    return groups


def dilated_order(length: int, base: int = 2, skip: int = 1) -> list[int]:
    """Every offset of the block once, group after group (:func:`dilated_groups` concatenated)."""
    return [i for group in dilated_groups(length, base, skip) for i in group]


def order_groups(order: "list[int]", counts: "list[int]") -> list[list[int]]:
    """``order`` cut into consecutive groups of ``counts[k]`` offsets (step ``k`` reveals ``order[C_{k-1}:C_k]``
    with :math:`C_k = \\sum_{m \\le k} c_m`); ``counts`` must sum to ``len(order)``. Zero counts give empty groups."""
    if sum(counts) != len(order) or min(counts, default=0) < 0:
        raise ValueError(f"counts must be non-negative and sum to {len(order)}, got {list(counts)}")
    out, at = [], 0
    for c in counts:
        out.append(list(order[at:at + c]))
        at += c
    return out
