"""Converting instance-mask tracks between YouTube-VIS, MOTS and DAVIS-style PNG folders.

Layouts written (and read); a MOTS or DAVIS folder converted back to YouTube-VIS keeps the split it
was converted from (recorded in its ``vistr.json``) unless ``split`` is given:

YouTube-VIS (2021 layout)::

    DST/<split>/instances.json            compressed RLE, bboxes, areas; ids kept
    DST/<split>/JPEGImages/<video>/...    frames copied from the source (when it has them)

MOTS (KITTI-MOTS / MOTSChallenge, CVAT's "MOTS PNG")::

    DST/instances_txt/<video>.txt         "frame id class_id height width rle" per object and frame;
                                          frame = 0-based position in the video, id = class_id*1000 + k
    DST/instances/<video>/<frame>.png     16-bit, pixel = class_id*1000 + k, 0 background
    DST/images/<video>/<frame>.jpg        the frames (copied when available)
    DST/labels.txt                        line i = name of class id i (line 0 "background")

DAVIS / YouTube-VOS::

    DST/Annotations/<video>/<frame>.png   palette ("P") PNG, pixel = object number 1..255 in the video
    DST/JPEGImages/<video>/<frame>.jpg

MOTS and DAVIS have no place for category names (DAVIS none for categories at all), video ids or
annotation ids, so both also get ``DST/vistr.json``: categories, videos (id, name, size, frame
files) and, per video, which pixel value is which annotation id and category. With it, a round
trip through either format restores every id exactly; without it (a dataset made by another tool)
videos, tracks and categories are numbered from the files (MOTS categories from ``labels.txt`` and
``class_id``; DAVIS objects all get category 1 "object").

Overlapping masks cannot be represented in MOTS or DAVIS. Deterministic resolution: a pixel claimed
by several tracks goes to the track listed first in the annotation file; the others lose it (a
frame whose mask becomes empty becomes null). The number of reassigned pixels is reported.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..atomic import atomic_directory, atomic_write_json
from ..errors import ConfigError, DatasetError, VistrWarning
from ..ops.masks import compressed_rle_counts, encode_masks
from ..progress import ProgressCallback, ProgressUpdate, no_progress
from .converted import SIDECAR, ConvertSummary, VideoTracks, copy_frames, read_sidecar, video_header
from .video_io import natural_key
from .ytvis import load_ytvis, track_json

FORMATS = ("ytvis", "mots", "davis", "cvat")
MOTS_IGNORE = 10000
DAVIS_VOID = 254  # values >= 254 are "void" in DAVIS tools (255 written by them)


def detect_format(src: Path) -> str:
    """``mots``, ``davis`` or ``ytvis`` from what ``src`` contains."""
    if (src / "instances_txt").is_dir() or (src / "instances").is_dir():
        return "mots"
    if (src / "Annotations").is_dir():
        return "davis"
    from .convert_cvat import looks_like_cvat

    if looks_like_cvat(src):
        return "cvat"
    return "ytvis"


# ---------------------------------------------------------------- reading


def _read_ytvis(src: Path, split: str) -> tuple[list[dict[str, Any]], Iterator[VideoTracks], int]:
    index = load_ytvis(src, split) if src.is_dir() else load_ytvis(annotation_file=src, check_files=False)
    if not index.has_annotations:
        raise DatasetError(f"{index.annotation_file} has no annotations to convert (a valid/test file?)")

    def videos() -> Iterator[VideoTracks]:
        for video in index.videos:
            masks, tracks = index.decode_masks(video, list(range(video.length)), include_crowd=True)
            yield VideoTracks(
                id=video.id,
                name=video.name,
                height=video.height,
                width=video.width,
                frame_names=list(video.file_names),
                ann_ids=[t.id for t in tracks],
                category_ids=[t.category_id for t in tracks],
                masks=list(masks),
                image_dir=index.image_root if index.image_root.is_dir() else None,
            )

    return index.categories, videos(), len(index.videos)


def _recorded_split(src: Path, source_format: str) -> str:
    """The YouTube-VIS split a MOTS / DAVIS folder was converted from (its sidecar's ``split``), so
    a round trip keeps the split's name; ``train`` otherwise."""
    side = read_sidecar(src) if source_format != "ytvis" and src.is_dir() else None
    recorded = side.get("split") if isinstance(side, dict) else None
    return recorded if isinstance(recorded, str) and recorded and "/" not in recorded else "train"


def _frame_names(video: str, stems: list[str], meta: dict[str, Any] | None) -> list[str]:
    if meta is not None:
        return list(meta["file_names"])
    return [f"{video}/{s}.jpg" for s in stems]


def _read_png_video(folder: Path) -> tuple[list[str], np.ndarray]:
    files = sorted(folder.glob("*.png"), key=lambda p: natural_key(p.name))
    if not files:
        raise DatasetError(f"{folder} holds no PNG masks")
    frames = []
    for f in files:
        img = Image.open(f)
        frames.append(np.array(img))
    shapes = {a.shape for a in frames}
    if len(shapes) != 1:
        raise DatasetError(
            f"{folder}: mask PNGs differ in size {sorted(shapes)}; all frames of a video must match"
        )
    return [f.stem for f in files], np.stack(frames)


def _read_mots(src: Path) -> tuple[list[dict[str, Any]], Iterator[VideoTracks], int]:
    side = read_sidecar(src)
    txt_dir, png_dir = src / "instances_txt", src / "instances"
    use_txt = txt_dir.is_dir()
    names = (
        sorted((p.stem for p in txt_dir.glob("*.txt")), key=natural_key)
        if use_txt
        else sorted((p.name for p in png_dir.iterdir() if p.is_dir()), key=natural_key)
    )
    if not names:
        raise DatasetError(f"{src} holds no MOTS sequences (instances_txt/*.txt or instances/<video>/)")
    categories = side["categories"] if side else _labels_txt(src / "labels.txt")
    metas = {m["name"]: m for m in side["videos"]} if side else {}

    def videos() -> Iterator[VideoTracks]:
        for number, name in enumerate(names, start=1):
            meta = metas.get(name)
            if use_txt:
                labels = _mots_txt_labels(txt_dir / f"{name}.txt", meta, png_dir / name)
                stems = (
                    [Path(f).stem for f in meta["file_names"]]
                    if meta
                    else _stems_for(src, name, labels.shape[0])
                )
            else:
                stems, labels = _read_png_video(png_dir / name)
                labels = np.where(labels == MOTS_IGNORE, 0, labels)  # ignore regions are not tracks
            yield _tracks_from_labels(
                labels, meta, number, name, stems, lambda v: (v // 1000, v % 1000), src / "images"
            )

    return categories, videos(), len(names)


def _stems_for(src: Path, name: str, length: int) -> list[str]:
    for folder in (src / "instances" / name, src / "images" / name):
        if folder.is_dir():
            stems = sorted({p.stem for p in folder.iterdir() if p.is_file()}, key=natural_key)
            if len(stems) == length:
                return stems
    return [f"{t:06d}" for t in range(length)]


def _mots_txt_labels(path: Path, meta: dict[str, Any] | None, png_folder: Path) -> np.ndarray:
    """The label maps ``[L, H, W]`` uint16 of one MOTS txt file."""
    rows = _mots_rows(path)
    if meta is not None:
        length, height, width = len(meta["file_names"]), meta["height"], meta["width"]
    elif rows:
        length, height, width = max(r[1] for r in rows) + 1, rows[0][3], rows[0][4]
        if png_folder.is_dir():
            length = max(length, len(list(png_folder.glob("*.png"))))
    else:
        raise DatasetError(f"{path} is empty and there is no {SIDECAR} to say how long the video is")
    labels = np.zeros((length, height, width), dtype=np.uint16)
    for line_no, frame, obj, h, w, counts in rows:
        if (h, w) != (height, width) or not 0 <= frame < length:
            raise DatasetError(
                f"{path} line {line_no}: object {obj} frame {frame} has size {h}x{w} or index outside the video"
            )
        if obj == MOTS_IGNORE:
            continue
        mask = mask_utils.decode({"size": [h, w], "counts": counts.encode("ascii")}).astype(bool)
        labels[frame][mask & (labels[frame] == 0)] = obj
    return labels


def _mots_rows(path: Path) -> list[tuple[int, int, int, int, int, str]]:
    """``(line, frame, id, height, width, rle)`` per line of a MOTS txt file, every RLE checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text; a MOTS txt file holds ASCII lines") from None
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 6:
            raise DatasetError(
                f"{path} line {line_no}: expected 'frame id class_id height width rle', got {line[:60]!r}"
            )
        try:
            frame, obj, h, w = int(parts[0]), int(parts[1]), int(parts[3]), int(parts[4])
        except ValueError:
            raise DatasetError(
                f"{path} line {line_no}: frame, ids, height and width must be integers"
            ) from None
        _check_rle(path, line_no, parts[5], h, w)
        rows.append((line_no, frame, obj, h, w, parts[5]))
    return rows


def _check_rle(path: Path, line_no: int, counts: str, height: int, width: int) -> None:
    """pycocotools raises a bare ValueError on garbage and decodes memory it never wrote for
    runs that stop short of H*W pixels; both become a line-numbered DatasetError here."""
    try:
        covered = int(compressed_rle_counts(counts).sum())
    except ValueError as err:
        raise DatasetError(
            f"{path} line {line_no}: {counts[:24]!r} is not a COCO compressed RLE ({err}); fix or remove the line"
        ) from None
    if covered != height * width:
        raise DatasetError(
            f"{path} line {line_no}: the RLE covers {covered} pixels, not {height}x{width} = {height * width}; "
            "fix its size or its mask"
        )


def _labels_txt(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []  # categories are then named after their class ids
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [
        {"id": i, "name": n, "supercategory": "object"}
        for i, n in enumerate(names)
        if i > 0 and n and not n.startswith("unused_") and n.lower() not in ("ignored", "ignore")
    ]


def _read_davis(src: Path) -> tuple[list[dict[str, Any]], Iterator[VideoTracks], int]:
    side = read_sidecar(src)
    ann_dir = src / "Annotations"
    names = sorted((p.name for p in ann_dir.iterdir() if p.is_dir()), key=natural_key)
    if not names:
        raise DatasetError(f"{ann_dir} holds no video folders")
    categories = side["categories"] if side else [{"id": 1, "name": "object", "supercategory": "object"}]
    metas = {m["name"]: m for m in side["videos"]} if side else {}

    def videos() -> Iterator[VideoTracks]:
        for number, name in enumerate(names, start=1):
            stems, labels = _read_png_video(ann_dir / name)
            labels = np.where(labels >= DAVIS_VOID, 0, labels)
            yield _tracks_from_labels(
                labels, metas.get(name), number, name, stems, lambda v: (1, v), src / "JPEGImages"
            )

    return categories, videos(), len(names)


def _tracks_from_labels(
    labels: np.ndarray,
    meta: dict[str, Any] | None,
    number: int,
    name: str,
    stems: list[str],
    split_value: Any,
    images: Path,
) -> VideoTracks:
    """Tracks of a label-map video ``[L, H, W]``; ``meta`` (side-car) maps values to ids."""
    length, height, width = labels.shape
    objects = {str(k): v for k, v in (meta or {}).get("objects", {}).items()}
    video = VideoTracks(
        id=int(meta["id"]) if meta else number,
        name=name,
        height=height,
        width=width,
        frame_names=_frame_names(name, stems, meta),
        image_dir=images if (images / name).is_dir() else None,
    )
    values = [int(v) for v in np.unique(labels) if v != 0]
    for k, value in enumerate(sorted(values, key=lambda v: objects.get(str(v), {}).get("order", v))):
        obj = objects.get(str(value))
        video.ann_ids.append(int(obj["annotation_id"]) if obj else number * 100000 + k + 1)
        video.category_ids.append(int(obj["category_id"]) if obj else int(split_value(value)[0]))
        video.masks.append(labels == value)
    return video


# ---------------------------------------------------------------- writing


def _label_map(video: VideoTracks, values: list[int], dtype: Any) -> tuple[np.ndarray, int]:
    """``[L, H, W]`` label map (first listed track wins overlaps) and the number of reassigned pixels."""
    labels = np.zeros((len(video.frame_names), video.height, video.width), dtype=dtype)
    overlap = 0
    for masks, value in zip(video.masks, values, strict=True):
        free = labels == 0
        overlap += int((masks & ~free).sum())
        labels[masks & free] = value
    return labels, overlap


def _video_meta(video: VideoTracks, values: list[int]) -> dict[str, Any]:
    return {
        **video_header(video),
        "objects": {
            str(v): {"annotation_id": a, "category_id": c, "order": k}
            for k, (v, a, c) in enumerate(zip(values, video.ann_ids, video.category_ids, strict=True))
        },
    }


def _mots_values(video: VideoTracks) -> list[int]:
    per_class: dict[int, int] = {}
    values = []
    for cat in video.category_ids:
        per_class[cat] = per_class.get(cat, 0) + 1
        if per_class[cat] > 999:
            raise ConfigError(
                f"video {video.id} ({video.name}) has over 999 tracks of category {cat}; MOTS cannot hold them"
            )
        if cat < 1 or cat * 1000 + 999 >= 65536 or cat * 1000 == MOTS_IGNORE:
            raise ConfigError(
                f"category id {cat} does not fit MOTS's class_id*1000 + instance encoding in 16 bits"
            )
        values.append(cat * 1000 + per_class[cat])
    return values


def _write_mots(
    video: VideoTracks, out: Path, summary: ConvertSummary, formats: tuple[str, ...]
) -> dict[str, Any]:
    values = _mots_values(video)
    labels, overlap = _label_map(video, values, np.uint16)
    summary.overlap_pixels += overlap
    stems = [Path(f).stem for f in video.frame_names]
    if "png" in formats:
        folder = out / "instances" / video.name
        folder.mkdir(parents=True, exist_ok=True)
        for stem, frame in zip(stems, labels, strict=True):
            cv2.imwrite(str(folder / f"{stem}.png"), frame)
    if "txt" in formats:
        lines = []
        for t, frame in enumerate(labels):
            present = [v for v in values if (frame == v).any()]
            rles = encode_masks(np.stack([frame == v for v in present])) if present else []
            lines += [
                f"{t} {v} {v // 1000} {video.height} {video.width} {r['counts']}"
                for v, r in zip(present, rles, strict=True)
            ]
        (out / "instances_txt").mkdir(exist_ok=True)
        (out / "instances_txt" / f"{video.name}.txt").write_text(
            "".join(f"{ln}\n" for ln in lines), encoding="utf-8"
        )
    summary.frames_copied += copy_frames(video, out / "images" / video.name)
    return _video_meta(video, values)


def _write_davis(
    video: VideoTracks, out: Path, summary: ConvertSummary, palette: list[int]
) -> dict[str, Any]:
    if len(video.masks) > DAVIS_VOID - 1:
        raise ConfigError(
            f"video {video.id} ({video.name}) has {len(video.masks)} tracks; DAVIS PNGs hold at most 253"
        )
    values = list(range(1, len(video.masks) + 1))
    labels, overlap = _label_map(video, values, np.uint8)
    summary.overlap_pixels += overlap
    folder = out / "Annotations" / video.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(video.frame_names, labels, strict=True):
        img = Image.fromarray(frame)
        img.putpalette(palette)  # an "L" image with a palette becomes "P": pixel = object number
        img.save(folder / f"{Path(name).stem}.png")
    summary.frames_copied += copy_frames(video, out / "JPEGImages" / video.name)
    return _video_meta(video, values)


def davis_palette() -> list[int]:
    """The DAVIS palette: the Pascal VOC colour map (bit-interleaved index -> RGB), 256 entries."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _write_ytvis(
    videos: Iterator[VideoTracks],
    categories: list[dict[str, Any]],
    out: Path,
    split: str,
    summary: ConvertSummary,
    progress: ProgressCallback,
    total: int,
) -> None:
    split_dir = out / split
    (split_dir / "JPEGImages").mkdir(parents=True)
    video_entries, annotations = [], []
    for video in videos:
        video_entries.append(
            {
                "id": video.id,
                "width": video.width,
                "height": video.height,
                "length": len(video.frame_names),
                "file_names": video.frame_names,
            }
        )
        for ann_id, cat, masks in zip(video.ann_ids, video.category_ids, video.masks, strict=True):
            if masks.any():
                annotations.append(track_json(ann_id, video.id, cat, masks))
        if video.image_dir is not None or video.frame_folder is not None:
            for name in video.frame_names:
                src = video.frame_file(name)
                if src is not None and src.is_file():
                    target = split_dir / "JPEGImages" / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, target)
                    summary.frames_copied += 1
        summary.videos += 1
        summary.tracks += len(video.masks)
        progress(ProgressUpdate(task="videos", completed=summary.videos, total=total, description=video.name))
    categories = _complete_categories(categories, {a["category_id"] for a in annotations})
    atomic_write_json(
        split_dir / "instances.json",
        {
            "info": {"description": "converted by vistr"},
            "licenses": [],
            "videos": video_entries,
            "categories": categories,
            "annotations": annotations,
        },
    )


def convert_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    to: str,
    source_format: str | None = None,
    split: str | None = None,
    mots_formats: tuple[str, ...] = ("txt", "png"),
    cvat_shapes: str = "auto",
    force: bool = False,
    progress: ProgressCallback = no_progress,
) -> ConvertSummary:
    """Convert the dataset at ``src`` into format ``to`` at ``dst`` (layouts in the module doc).

    Args:
        source_format: ``ytvis``, ``mots`` or ``davis``; detected from ``src`` when None.
        split: the YouTube-VIS split to read (source; default ``train``) or to write
            (destination; default the split the source was converted from, recorded in its
            ``vistr.json``, else ``train``).
        mots_formats: which MOTS variants to write: ``txt``, ``png`` or both.
        cvat_shapes: CVAT shapes, ``auto``, ``polygon`` or ``mask`` (see ``formats.cvat_video``).
        force: replace an existing ``dst`` (only after the conversion succeeded).
    """
    src = Path(src)
    if not src.exists():
        raise DatasetError(f"{src} does not exist; pass a YouTube-VIS, MOTS or DAVIS dataset folder")
    if source_format is None:
        source_format = detect_format(src) if src.is_dir() or src.suffix.lower() == ".xml" else "ytvis"
    for name, value in (("--from", source_format), ("--to", to)):
        if value not in FORMATS:
            raise ConfigError(f"{name} {value!r} is not a format; choose one of {', '.join(FORMATS)}")
    if source_format == to:
        raise ConfigError(f"source and destination are both {to}; nothing to convert")
    if not set(mots_formats) <= {"txt", "png"} or not mots_formats:
        raise ConfigError("MOTS output is txt, png or both")
    from . import convert_cvat

    split = split or _recorded_split(src, source_format)
    readers = {
        "ytvis": lambda: _read_ytvis(src, split),
        "mots": lambda: _read_mots(src),
        "davis": lambda: _read_davis(src),
        "cvat": lambda: convert_cvat.read_cvat(src),
    }
    categories, videos, total = readers[source_format]()
    summary = ConvertSummary(out=Path(dst), to=to)
    with atomic_directory(dst, force=force) as tmp:
        if to == "ytvis":
            _write_ytvis(videos, categories, tmp, split, summary, progress, total)
            return summary
        metas = []
        palette = davis_palette()
        for video in videos:
            if to == "mots":
                metas.append(_write_mots(video, tmp, summary, tuple(mots_formats)))
            elif to == "cvat":
                metas.append(convert_cvat.write_cvat(video, tmp, summary, categories, cvat_shapes))
            else:
                metas.append(_write_davis(video, tmp, summary, palette))
            summary.videos += 1
            summary.tracks += len(video.masks)
            progress(
                ProgressUpdate(task="videos", completed=summary.videos, total=total, description=video.name)
            )
        used = {o["category_id"] for m in metas for o in m.get("objects", {}).values()}
        categories = _complete_categories(categories, used)
        if to == "mots":
            _write_labels_txt(tmp / "labels.txt", categories)
        if to == "cvat":
            convert_cvat.write_labels_json(tmp / "labels.json", categories)
        side = {"format": to, "split": split, "categories": categories, "videos": metas}
        atomic_write_json(tmp / SIDECAR, side, indent=1)
    return summary


def _complete_categories(categories: list[dict[str, Any]], used: set[int]) -> list[dict[str, Any]]:
    """``categories`` plus ``class_<id>`` for every used id it lacks (a MOTS ``class_id`` missing
    from labels.txt), with a :class:`VistrWarning`: the output always passes ``vistr data check``."""
    known = {int(c["id"]) for c in categories}
    missing = sorted(int(i) for i in used if int(i) not in known)
    if missing and categories:
        warnings.warn(
            f"class id(s) {', '.join(map(str, missing))} are not in the source's category list (labels.txt); "
            f"added as {', '.join(f'class_{i}' for i in missing)}: rename them in the output if they have names",
            VistrWarning,
            stacklevel=3,
        )
    extra = [{"id": i, "name": f"class_{i}", "supercategory": "object"} for i in missing]
    return sorted([*categories, *extra], key=lambda c: int(c["id"]))


def _write_labels_txt(path: Path, categories: list[dict[str, Any]]) -> None:
    names = {int(c["id"]): str(c["name"]) for c in categories}
    top = max(names, default=0)
    lines = ["background"] + [names.get(i, f"unused_{i}") for i in range(1, top + 1)]
    path.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
