"""The batch output folder of ``vistr segment``: checked before the long work, tidied after.

- :func:`prepare_output_dir`: ``OUT`` must be a folder we can write (checked up front, one line,
  instead of one ``OSError`` per video); it is created only then, and
  :func:`drop_if_empty` removes it again when the batch wrote nothing into it.
- :func:`remove_stale_partials`: ``OUT/.<name>.<random>.partial`` folders are videos a killed
  run was building (:func:`vistr_core.atomic.atomic_directory`); a rerun removes those of the
  videos it owns, and only folders of that pattern.
- :func:`settings_change`: a finished video is skipped on a rerun; when its ``meta.json`` records
  another checkpoint or other settings, the skip says which.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError, VistrError


def prepare_output_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed after checking it can hold outputs; True if it was created.

    Raises:
        OutputExistsError: ``out_dir`` (or a parent) is a file.
        VistrError: it cannot be created or written (permissions, read-only filesystem).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"output {out_dir} is a file; pass a folder to --out (-o)")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir, prefix=".vistr-write-test."):
            pass
    except OSError as err:
        if created:
            drop_if_empty(out_dir, created=True)
        reason = err.strerror or type(err).__name__
        raise VistrError(
            f"cannot write to output folder {out_dir} ({reason}); pass a folder you can write to --out (-o)"
        ) from None
    return created


def drop_if_empty(out_dir: Path, *, created: bool) -> None:
    """Remove ``out_dir`` if this run created it and left nothing in it."""
    if created and out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()


def remove_stale_partials(out_dir: Path, names: list[str]) -> list[Path]:
    """Delete ``OUT/.<name>.*.partial`` folders of ``names``; the removed paths."""
    stale = [p for name in names for p in out_dir.glob(f".{_glob_escape(name)}.*.partial") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def settings_change(folder: Path, *, checkpoint: Path | None, settings: dict[str, Any]) -> str:
    """What differs between a finished video's ``meta.json`` and this run ("" when nothing does
    or the meta cannot be read): the checkpoint, or the names of the settings that changed."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        recorded = meta.get("settings") or {}
    except (OSError, ValueError, AttributeError):
        return ""
    ours = str(Path(checkpoint).resolve()) if checkpoint is not None else None
    if ours is not None and meta.get("checkpoint") not in (None, ours):
        return f"made with checkpoint {meta.get('checkpoint')}"
    changed = [
        f"{group}.{key}" if group else key
        for group, values in settings.items()
        for key, value in (values.items() if isinstance(values, dict) else [("", values)])
        if _recorded(recorded, meta, group, key) != value
    ]
    return f"made with other settings ({', '.join(changed)})" if changed else ""


def _recorded(recorded: dict[str, Any], meta: dict[str, Any], group: str, key: str) -> Any:
    if group == "frame_range":  # stored at the top level of meta.json
        return (meta.get("frame_range") or {}).get(key)
    if not key:
        return recorded.get(group)
    if group == "outputs":  # an output older versions did not offer was not written
        return bool((recorded.get(group) or {}).get(key, False))
    return (recorded.get(group) or {}).get(key)


__all__ = ["drop_if_empty", "prepare_output_dir", "remove_stale_partials", "settings_change"]
