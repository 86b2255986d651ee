"""`vistr data check`: validate a split (every problem listed, not just the first) and count it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError
from .validate import Problem, validate_annotations
from .ytvis import image_root_beside, read_json, resolve_split


@dataclass(frozen=True)
class CheckReport:
    """The outcome of :func:`check_dataset`."""

    annotation_file: Path
    image_root: Path
    problems: list[Problem]
    num_videos: int
    num_instances: int
    num_categories: int
    has_annotations: bool

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(
    data: str | Path | None = None,
    split: str = "train",
    *,
    annotation_file: str | Path | None = None,
    image_root: str | Path | None = None,
    check_files: bool = True,
    decode: bool = True,
) -> CheckReport:
    """Validate a split (found like :func:`vistr_core.data.ytvis.load_ytvis` finds it) and count it.

    With ``check_files``, every frame must exist; with ``decode`` too, decode at the video's size.

    Unparseable JSON or a missing file raises :class:`DatasetError`; every other defect is listed.
    """
    if annotation_file is not None:
        ann_path = Path(annotation_file)
        root = Path(image_root) if image_root is not None else image_root_beside(ann_path)
    elif data is not None:
        files = resolve_split(data, split)
        ann_path, root = (
            files.annotation_file,
            Path(image_root) if image_root is not None else files.image_root,
        )
    else:
        raise DatasetError("no dataset given; pass a dataset folder (and --split) or --annotations")
    raw = read_json(ann_path)
    problems = validate_annotations(raw, root if check_files else None, source=ann_path, decode=decode)
    as_dict = raw if isinstance(raw, dict) else {}
    anns = as_dict.get("annotations")
    return CheckReport(
        annotation_file=ann_path,
        image_root=root,
        problems=problems,
        num_videos=len(as_dict.get("videos") or []),
        num_instances=len(anns) if isinstance(anns, list) else 0,
        num_categories=len(as_dict.get("categories") or []),
        has_annotations=isinstance(anns, list),
    )
