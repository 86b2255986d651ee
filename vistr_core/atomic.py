"""Atomic file output: a reader never sees a half-written file, a crash never leaves one.

Everything is written to a temporary sibling and moved into place with :func:`os.replace`, which is
atomic on POSIX and Windows when source and target share a filesystem. The temporaries are created
private (``mkstemp``: 0600, ``mkdtemp``: 0700); what is moved into place gets the modes a plain
``open`` / ``mkdir`` would have given it under the user's umask.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import OutputExistsError


def _umask() -> int:
    """The process umask: from /proc on Linux; elsewhere os.umask, which can only be read by
    setting it (put straight back; another thread creating a file meanwhile could see 022)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def refuse_overwrite(path: str | os.PathLike[str], *, force: bool, what: str = "output") -> None:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``force`` is False."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(
            f"{what} {p} already exists; pass --force to overwrite it or choose another path"
        )


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; move it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = None) -> None:
    """Write ``obj`` as UTF-8 JSON atomically (compact unless ``indent`` is given)."""
    separators = (",", ":") if indent is None else None
    atomic_write_text(path, json.dumps(obj, indent=indent, separators=separators))


@contextmanager
def atomic_directory(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and move it to ``path`` when the block succeeds.

    An existing ``path`` is refused unless ``force``; with ``force`` it is replaced only after the
    new content is complete, so an interrupted run leaves the old directory untouched.
    """
    target = Path(path)
    refuse_overwrite(target, force=force, what="output folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
