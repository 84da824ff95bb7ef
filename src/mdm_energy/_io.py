"""Atomic file output (write to a temporary file beside the target, then rename it into place), JSON-safe
values and plain text tables.

An interrupted or failed run therefore never leaves a half-written file where a user expects one, nor a
temporary file beside it; files that belong together (a checkpoint's) are renamed into place together,
with SIGINT/SIGTERM held back, so a reader sees all old files or all new ones. A full disk is reported as
an ``OSError`` (ENOSPC) naming the file the user asked for, not the temporary one.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ._signals import held

__all__ = ["check_output_path", "atomic_write", "atomic_write_all", "write_text_atomic", "tensors_writer", "naming_full_disk", "DISK_FULL",
           "json_safe", "format_table"]

#: The errors of a write that found no room: no space left on the device, or the user's disk quota spent.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

#: One file to write: its path, ``write(tmp_path)`` that fills a temporary file, and the temporary file's suffix
#: (some writers pick the format from it).
FileWrite = tuple["str | os.PathLike[str]", Callable[[str], None], str]


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
    try:
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
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ValueError(f"{what} cannot be used: {exc.strerror or exc}: {text!r}") from None
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def naming_full_disk(path: "str | os.PathLike[str]") -> Iterator[None]:
    """Re-raise a full disk (:data:`DISK_FULL`) inside the block as an ``OSError`` whose ``filename`` is
    ``path``: a failed ``write()`` names no file, or a temporary one, and the user needs to know which output
    did not fit."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc


def atomic_write_all(files: Sequence[FileWrite]) -> list[Path]:
    """Write several files as one: each ``write(tmp_path)`` fills a temporary file beside its target, and only
    when every one is written are they renamed into place, with SIGINT/SIGTERM held back over the renames.
    A failure, a full disk or an interrupt therefore leaves every target as it was and no temporary file.

    The files get the usual permissions (0666 less the umask) rather than mkstemp's private 0600.
    """
    targets = [Path(path) for path, _, _ in files]
    tmps: list[str] = []
    try:
        for target, (_, write, suffix) in zip(targets, files):
            with naming_full_disk(target):
                with held():  # the temporary file is created and remembered together, so it is always removed
                    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=target.parent)
                    tmps.append(tmp)
                    os.close(fd)
                write(tmp)
                os.chmod(tmp, 0o666 & ~_umask())
        with held():
            for target, tmp in zip(targets, tmps):
                os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return targets


def atomic_write(path: "str | os.PathLike[str]", write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    return atomic_write_all([(path, write, suffix)])[0]


def tensors_writer(tensors: "dict[str, Any]") -> Callable[[str], None]:
    """A ``write(tmp_path)`` that stores torch tensors as a safetensors file. The file is serialised in
    memory and written with Python's own I/O, so that a full disk is an ``OSError`` (ENOSPC) like any other
    write — safetensors' writer reports it as its own error, without an errno."""

    def write(tmp: str) -> None:
        from safetensors.torch import save

        Path(tmp).write_bytes(save(tensors))

    return write


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
