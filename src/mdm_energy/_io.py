"""Atomic file output (write to a temporary file beside the target, then rename it into place), JSON-safe
values and plain text tables.

An interrupted or failed run therefore never leaves a half-written file where a user expects one.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["check_output_path", "atomic_write", "write_text_atomic", "json_safe", "format_table"]


def check_output_path(path: "str | os.PathLike[str]", what: str, folder: bool = False,
                      suffixes: "tuple[str, ...] | None" = None) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a command may write there, else ``ValueError`` naming ``what``
    (``--plot``, ``plot file``...) and the path — checked before any work, so a refused command writes nothing.

    The one check of every output path (plots, saved profiles, reports, checkpoint folders), so that every
    flag refuses the same things: an empty or blank name (which ``Path`` would read as the current folder),
    a NUL byte, a parent that is not an existing, writable folder, and — for a file (``folder`` false) — an
    existing folder, a name ending in a path separator (``Path`` drops it and would write the file without
    it) or a suffix outside ``suffixes``; for a folder, an existing file.
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must name a {'folder' if folder else 'file'}, got {text!r}")
    if "\0" in text:
        raise ValueError(f"{what} contains a NUL byte: {text!r}")
    p = Path(text)
    if folder:
        if p.exists() and not p.is_dir():
            raise ValueError(f"{what} exists and is not a folder: {text!r}")
    else:
        if p.is_dir() or text.endswith(("/", os.sep)):
            raise ValueError(f"{what} is a folder, not a file: {text!r}")
        if suffixes is not None and p.suffix.lower() not in suffixes:
            raise ValueError(f"{what} must end in {', '.join(suffixes)}, got {text!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        state = "is a file, not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"folder for {what} {state}: {str(parent)!r}")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"folder for {what} is not writable: {str(parent)!r}")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: "str | os.PathLike[str]", write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    The file gets the usual permissions (0666 less the umask) rather than mkstemp's private 0600.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def write_text_atomic(path: "str | os.PathLike[str]", text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and an atomic rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            fh.write(text)

    return atomic_write(path, write)


def format_table(headers: "list[str]", rows: "list[list[Any]]") -> str:
    """A plain aligned text table (cells right-aligned), with a rule under the header."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def json_safe(obj: Any) -> Any:
    """Replace non-finite floats by ``None`` (JSON has no inf/nan) and numpy scalars/arrays by Python ones."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
