"""CVAT "CVAT for video 1.1" XML: one ``<track>`` per object, written from and read into YouTube-VIS.

The format (docs.cvat.ai, "XML annotation format", interpolation mode)::

    <annotations>
      <version>1.1</version>
      <meta><task> <size>L</size> <mode>interpolation</mode> <labels><label><name>cat</name>
            <attributes>...</attributes></label></labels>
            <original_size><width>W</width><height>H</height></original_size> </task></meta>
      <track id="0" label="cat" source="auto" [group_id="3"]>
        <polygon frame="0" keyframe="1" outside="0" occluded="0" points="x1,y1;x2,y2;..." z_order="0">
          <attribute name="score">0.93</attribute> ...
        </polygon>
        <mask frame="5" keyframe="1" outside="0" occluded="0" rle="0, 3, 2, ..." left="4" top="7"
              width="12" height="9" z_order="0"/>
        <polygon frame="9" keyframe="1" outside="1" .../>          <!-- absent from frame 9 on -->
      </track>
    </annotations>

How CVAT reads a track, and so how we write and read one: a track starts at its first shape; a
shape holds until the next one; ``outside="1"`` means absent from that frame until the next shape;
a track whose last shape is not outside continues to the end of the video. CVAT's importer keeps
only ``keyframe="1"`` shapes and interpolates polygons between them (masks are not interpolated).
So we write every frame where the object is present, ``keyframe="1"`` wherever the shape differs
from the previous frame's (for polygons also from the next frame's, so interpolation never invents
an in-between), and an ``outside`` keyframe at the first frame of every absence. Reading, we take
every written shape; frames left out between two shapes are interpolated as CVAT does for
polygons of equal vertex count and hold the earlier shape otherwise.

Shapes (``shapes=``): ``auto`` writes a track as polygons when every frame is one part without
holes that the polygon reproduces exactly, else as CVAT masks (lossless either way); ``mask``
always masks; ``polygon`` always polygons, a mask of several parts becoming several tracks sharing
a ``group_id`` (CVAT's way of grouping shapes into one object) and holes filled. On reading,
tracks sharing a non-zero ``group_id`` and label are merged into one object.

Attributes on every shape: ``score`` (the track's score), ``vistr_track_id`` (the id to restore)
and ``needs_review`` (``true`` for tracks ``vistr review`` flagged).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ...atomic import atomic_write_bytes
from ...errors import ConfigError, DatasetError
from ...ops.masks import decode_segmentation, encode_mask
from .cvat_shapes import (
    MaskRle,
    as_single_polygon,
    decode_cvat_rle,
    encode_cvat_rle,
    fill_polygons,
    polygons_for,
)

SHAPE_MODES = ("auto", "polygon", "mask")
SHAPE_TAGS = ("polygon", "mask")
IGNORED_TAGS = ("box", "polyline", "points", "ellipse", "cuboid", "skeleton", "tag")
ATTRIBUTES = (  # name, CVAT input type, default, values ("min\nmax\nstep" for numbers)
    ("score", "number", "0", "0\n1\n0.0001"),
    ("vistr_track_id", "text", "", ""),
    ("needs_review", "checkbox", "false", "false"),
)
EXPORT_HINT = "export the task from CVAT as 'CVAT for video 1.1'"


@dataclass(frozen=True)
class CvatTrack:
    """One object to write: per-frame compressed RLEs (None where absent) and its attributes."""

    track_id: int
    category_id: int
    segmentations: Sequence[dict[str, Any] | None]
    score: float | None = None
    needs_review: bool = False


@dataclass(frozen=True)
class _Shape:
    """One frame's shape: ``kind`` polygon or mask, ``attrs`` its geometry attributes as written."""

    kind: str
    attrs: tuple[tuple[str, str], ...]


# ---------------------------------------------------------------- writing


def write(
    dataset: dict[str, Any], path: str | Path, *, video_id: int | None = None, shapes: str = "auto"
) -> int:
    """Write one video of a YouTube-VIS dict (``videos``, ``categories``, ``annotations``) as CVAT XML.

    Annotations may carry ``score``, ``needs_review`` and ``track_id`` (else ``id`` is the track
    id). Returns the number of ``<track>`` elements written.
    """
    videos = dataset["videos"]
    video = videos[0] if video_id is None else next(v for v in videos if v["id"] == video_id)
    tracks = [
        CvatTrack(
            track_id=int(a.get("track_id", a["id"])),
            category_id=int(a["category_id"]),
            segmentations=a["segmentations"],
            score=a.get("score"),
            needs_review=bool(a.get("needs_review", False)),
        )
        for a in dataset.get("annotations") or []
        if a["video_id"] == video["id"]
    ]
    name = video.get("name") or Path(video["file_names"][0]).parent.name or str(video["id"])
    return write_video(
        path,
        name=name,
        size=(int(video["height"]), int(video["width"])),
        length=int(video["length"]),
        categories=dataset["categories"],
        tracks=tracks,
        shapes=shapes,
    )


def write_video(
    path: str | Path,
    *,
    name: str,
    size: tuple[int, int],
    length: int,
    categories: Sequence[dict[str, Any]],
    tracks: Sequence[CvatTrack],
    shapes: str = "auto",
) -> int:
    """Write ``tracks`` of one ``length``-frame video of ``size`` (H, W) to ``path`` atomically.

    Returns the number of ``<track>`` elements written (more than ``len(tracks)`` when ``polygon``
    shapes split several-part masks into grouped tracks).
    """
    if shapes not in SHAPE_MODES:
        raise ConfigError(f"CVAT shapes {shapes!r} is not one of {', '.join(SHAPE_MODES)}")
    names = {int(c["id"]): str(c["name"]) for c in categories}
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    root.append(_meta(name, size, length, [str(c["name"]) for c in categories]))
    count, group = 0, 0
    for track in tracks:
        if track.category_id not in names:
            raise DatasetError(f"track {track.track_id} has category {track.category_id}, not in {names}")
        parts = _track_shapes(track, size, length, shapes)
        group_id = 0
        if len(parts) > 1:
            group += 1
            group_id = group
        for sequence in parts:
            element = ET.SubElement(
                root, "track", id=str(count), label=names[track.category_id], source=_source(track)
            )
            if group_id:
                element.set("group_id", str(group_id))
            _write_shapes(element, sequence, _attributes(track))
            count += 1
    ET.indent(root, space="  ")
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
    return count


def _source(track: CvatTrack) -> str:
    return "auto" if track.score is not None else "manual"


def _attributes(track: CvatTrack) -> list[tuple[str, str]]:
    score = "" if track.score is None else f"{track.score:.4f}"
    return [
        ("score", score),
        ("vistr_track_id", str(track.track_id)),
        ("needs_review", "true" if track.needs_review else "false"),
    ]


def _meta(name: str, size: tuple[int, int], length: int, labels: list[str]) -> ET.Element:
    meta = ET.Element("meta")
    task = ET.SubElement(meta, "task")
    for tag, text in (
        ("id", "0"),
        ("name", name),
        ("size", str(length)),
        ("mode", "interpolation"),
        ("overlap", "0"),
        ("start_frame", "0"),
        ("stop_frame", str(max(length - 1, 0))),
        ("frame_filter", ""),
    ):
        ET.SubElement(task, tag).text = text
    label_list = ET.SubElement(task, "labels")
    for label in labels:
        node = ET.SubElement(label_list, "label")
        ET.SubElement(node, "name").text = label
        ET.SubElement(node, "type").text = "any"
        attributes = ET.SubElement(node, "attributes")
        for attr_name, input_type, default, values in ATTRIBUTES:
            attr = ET.SubElement(attributes, "attribute")
            for tag, text in (
                ("name", attr_name),
                ("mutable", "False"),
                ("input_type", input_type),
                ("default_value", default),
                ("values", values),
            ):
                ET.SubElement(attr, tag).text = text
    original = ET.SubElement(task, "original_size")
    ET.SubElement(original, "width").text = str(size[1])
    ET.SubElement(original, "height").text = str(size[0])
    return meta


def _track_shapes(
    track: CvatTrack, size: tuple[int, int], length: int, shapes: str
) -> list[list[_Shape | None]]:
    """Per written track, its shape in each of the ``length`` frames (None where absent)."""
    if len(track.segmentations) != length:
        raise DatasetError(
            f"track {track.track_id} has {len(track.segmentations)} frames but the video has {length}"
        )
    masks = list(_masks(track, size))
    if shapes == "auto":
        polygons = [None if m is None else as_single_polygon(m) for m in masks]
        if all(p is not None for m, p in zip(masks, polygons, strict=True) if m is not None):
            return [[None if p is None else _polygon(p) for p in polygons]]
        shapes = "mask"
    if shapes == "mask":
        return [[None if m is None else _mask(encode_cvat_rle(m)) for m in masks]]
    per_frame = [[] if m is None else polygons_for(m) for m in masks]
    parts = max((len(p) for p in per_frame), default=0)
    return [[_polygon(p[k]) if k < len(p) else None for p in per_frame] for k in range(max(parts, 1))]


def _masks(track: CvatTrack, size: tuple[int, int]) -> Iterator[np.ndarray | None]:
    for segm in track.segmentations:
        mask = None if segm is None else decode_segmentation(segm, *size)
        yield mask if mask is not None and mask.any() else None


def _polygon(points: np.ndarray) -> _Shape:
    text = ";".join(f"{x:.2f},{y:.2f}" for x, y in points)
    return _Shape("polygon", (("points", text),))


def _mask(rle: MaskRle) -> _Shape:
    return _Shape(
        "mask",
        (
            ("rle", ", ".join(str(c) for c in rle.counts)),
            ("left", str(rle.left)),
            ("top", str(rle.top)),
            ("width", str(rle.width)),
            ("height", str(rle.height)),
        ),
    )


def _write_shapes(
    track: ET.Element, sequence: list[_Shape | None], attributes: list[tuple[str, str]]
) -> None:
    """Every present frame, keyframes where the shape changes, an outside keyframe after each run."""
    for t, shape in enumerate(sequence):
        previous = sequence[t - 1] if t else None
        following = sequence[t + 1] if t + 1 < len(sequence) else None
        if shape is None:
            if previous is not None:
                _shape_element(track, previous, t, keyframe=True, outside=True, attributes=attributes)
            continue
        changes = previous != shape or (
            shape.kind == "polygon" and following is not None and following != shape
        )
        _shape_element(track, shape, t, keyframe=changes, outside=False, attributes=attributes)


def _shape_element(
    track: ET.Element,
    shape: _Shape,
    frame: int,
    *,
    keyframe: bool,
    outside: bool,
    attributes: list[tuple[str, str]],
) -> None:
    element = ET.SubElement(
        track,
        shape.kind,
        frame=str(frame),
        keyframe=str(int(keyframe)),
        outside=str(int(outside)),
        occluded="0",
    )
    for key, value in shape.attrs:
        element.set(key, value)
    element.set("z_order", "0")
    for attr_name, value in attributes:
        ET.SubElement(element, "attribute", name=attr_name).text = value


# ---------------------------------------------------------------- reading


@dataclass
class _ReadTrack:
    label: str
    group: int
    track_id: int | None
    score: float | None
    frames: dict[int, np.ndarray]  # frame -> bool [H, W], only where present


def read(
    path: str | Path,
    *,
    video_id: int = 1,
    categories: Sequence[dict[str, Any]] | None = None,
    file_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A YouTube-VIS dict (one video; one annotation per object, compressed RLE) from a CVAT file.

    Args:
        categories: the category ids to give label names (e.g. from the export's side-car); labels
            not in it, or all labels when None, get the next free ids in the file's label order.
        file_names: the video's frame files; default ``<task name>/frame_000000.jpg`` ...
    Annotation ids are the ``vistr_track_id`` attributes where present and unique, else new ids.
    ``info.cvat_ignored_shapes`` counts boxes, points and other shapes that hold no mask.
    """
    path = Path(path)
    root = _parse(path)
    meta, offset = _task_meta(root, path)
    name = meta.findtext("name") or path.parent.name
    length, size = _length_and_size(meta, root, path)
    labels = [n.text or "" for n in meta.iterfind("labels/label/name")]
    cats = _categories(labels, categories)
    by_name = {c["name"]: c["id"] for c in cats}
    ignored, tracks = 0, []
    for element in root.iterfind("track"):
        track, skipped = _read_track(element, path, offset, length, size)
        ignored += skipped
        if track is not None:
            if track.label not in by_name:
                cats.append({"id": max(by_name.values(), default=0) + 1, "name": track.label})
                by_name[track.label] = cats[-1]["id"]
            tracks.append(track)
    ignored += sum(1 for _ in root.iterfind("image"))
    files = (
        list(file_names) if file_names is not None else [f"{name}/frame_{t:06d}.jpg" for t in range(length)]
    )
    if len(files) != length:
        raise DatasetError(f"{path} has {length} frames but {len(files)} frame names were given")
    annotations = _annotations(_merge_groups(tracks), by_name, video_id, length, size)
    return {
        "info": {"description": f"converted by vistr from {path.name}", "cvat_ignored_shapes": ignored},
        "licenses": [],
        "videos": [
            {
                "id": video_id,
                "name": name,
                "width": size[1],
                "height": size[0],
                "length": length,
                "file_names": files,
            }
        ],
        "categories": [{"supercategory": "object", **c} for c in cats],
        "annotations": annotations,
    }


def _parse(path: Path) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist; pass a CVAT annotations.xml") from None
    except ET.ParseError as err:
        raise DatasetError(f"{path} is not valid XML ({err}); {EXPORT_HINT}") from None
    if root.tag != "annotations":
        raise DatasetError(f"{path} is not a CVAT annotation file (root <{root.tag}>); {EXPORT_HINT}")
    if root.find("image") is not None and root.find("track") is None:
        raise DatasetError(f"{path} is in 'CVAT for images' format (<image> elements); {EXPORT_HINT}")
    return root


def _task_meta(root: ET.Element, path: Path) -> tuple[ET.Element, int]:
    """The ``<task>`` (or ``<job>``) element and the frame number of the file's first frame."""
    task = root.find("meta/task")
    if task is not None:
        return task, 0
    job = root.find("meta/job")
    if job is not None:  # a job export numbers frames as in its task
        return job, int(job.findtext("start_frame") or 0)
    raise DatasetError(f"{path} has no <meta><task> (or <job>); {EXPORT_HINT}")


def _length_and_size(meta: ET.Element, root: ET.Element, path: Path) -> tuple[int, tuple[int, int]]:
    try:
        length = int(meta.findtext("size") or "")
        width = int(meta.findtext("original_size/width") or "")
        height = int(meta.findtext("original_size/height") or "")
    except ValueError:
        raise DatasetError(
            f"{path}: <meta> lacks <size> or <original_size><width>/<height>; {EXPORT_HINT}"
        ) from None
    return length, (height, width)


def _categories(labels: list[str], given: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    cats = [{"id": int(c["id"]), "name": str(c["name"])} for c in given or []]
    known = {c["name"] for c in cats}
    for label in labels:
        if label not in known:
            cats.append({"id": max((c["id"] for c in cats), default=0) + 1, "name": label})
            known.add(label)
    return cats


def _read_track(
    element: ET.Element, path: Path, offset: int, length: int, size: tuple[int, int]
) -> tuple[_ReadTrack | None, int]:
    """The object one ``<track>`` describes (None if it holds no polygon or mask) and how many
    shapes were skipped as not masks."""
    shapes = [s for s in element if s.tag in SHAPE_TAGS]
    skipped = sum(1 for s in element if s.tag in IGNORED_TAGS)
    if not shapes:
        return None, skipped
    shapes.sort(key=lambda s: int(s.get("frame", "0")))
    attrs = {a.get("name"): (a.text or "").strip() for a in shapes[0].iterfind("attribute")}
    track = _ReadTrack(
        label=element.get("label", ""),
        group=int(element.get("group_id", "0") or 0),
        track_id=_int_or_none(attrs.get("vistr_track_id")),
        score=_float_or_none(attrs.get("score")),
        frames={},
    )
    where = f"{path} track {element.get('id')}"
    for k, shape in enumerate(shapes):
        frame = int(shape.get("frame", "0")) - offset
        if not 0 <= frame < length:
            raise DatasetError(f"{where}: frame {frame + offset} is outside the task's {length} frames")
        if shape.get("outside") == "1":
            continue
        following = shapes[k + 1] if k + 1 < len(shapes) else None
        end = length if following is None else int(following.get("frame", "0")) - offset
        for t, mask in _shape_frames(shape, following, frame, end, size, where):
            if mask.any():
                track.frames[t] = mask
    return track, skipped


def _shape_frames(
    shape: ET.Element,
    following: ET.Element | None,
    start: int,
    end: int,
    size: tuple[int, int],
    where: str,
) -> Iterator[tuple[int, np.ndarray]]:
    """Masks of frames ``start..end-1``: the shape, then CVAT's interpolation towards the next one."""
    first = _shape_mask(shape, size, where)
    yield start, first
    if end <= start + 1:
        return
    a, b = _points(shape), None
    if following is not None and following.get("outside") != "1":
        b = _points(following)
    for t in range(start + 1, end):
        if a is not None and b is not None and len(a) == len(b):
            w = (t - start) / (end - start)
            yield t, fill_polygons([(1 - w) * a + w * b], size)
        else:
            yield t, first


def _points(shape: ET.Element) -> np.ndarray | None:
    if shape.tag != "polygon":
        return None
    try:
        pairs = [p.split(",") for p in shape.get("points", "").split(";") if p.strip()]
        return np.array([[float(x), float(y)] for x, y in pairs], dtype=np.float64)
    except ValueError:
        return np.zeros((0, 2))


def _shape_mask(shape: ET.Element, size: tuple[int, int], where: str) -> np.ndarray:
    frame = shape.get("frame")
    if shape.tag == "polygon":
        points = _points(shape)
        if points is None or len(points) == 0:
            raise DatasetError(f"{where} frame {frame}: polygon points must look like 'x1,y1;x2,y2;...'")
        return fill_polygons([points], size)
    try:
        rle = MaskRle(
            counts=tuple(int(float(v)) for v in shape.get("rle", "").split(",") if v.strip()),
            left=int(float(shape.get("left", ""))),
            top=int(float(shape.get("top", ""))),
            width=int(float(shape.get("width", ""))),
            height=int(float(shape.get("height", ""))),
        )
        return decode_cvat_rle(rle, size)
    except ValueError as err:
        raise DatasetError(f"{where} frame {frame}: bad mask ({err}); {EXPORT_HINT}") from None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _merge_groups(tracks: list[_ReadTrack]) -> list[_ReadTrack]:
    """Tracks sharing a non-zero group id and label become one object (union of their masks)."""
    merged: list[_ReadTrack] = []
    groups: dict[tuple[int, str], _ReadTrack] = {}
    for track in tracks:
        key = (track.group, track.label)
        if track.group == 0 or key not in groups:
            merged.append(track)
            if track.group:
                groups[key] = track
            continue
        into = groups[key]
        for t, mask in track.frames.items():
            into.frames[t] = into.frames[t] | mask if t in into.frames else mask
        if into.track_id is None:
            into.track_id = track.track_id
    return merged


def _annotations(
    tracks: list[_ReadTrack], by_name: dict[str, int], video_id: int, length: int, size: tuple[int, int]
) -> list[dict[str, Any]]:
    ids = [t.track_id for t in tracks]
    taken: set[int] = set()
    annotations = []
    for track, wanted in zip(tracks, ids, strict=True):
        ann_id = wanted if wanted is not None and wanted > 0 and ids.count(wanted) == 1 else None
        if ann_id is None:
            ann_id = max([*(i for i in ids if i), *taken, 0]) + 1
        taken.add(ann_id)
        annotations.append(_annotation(ann_id, video_id, by_name[track.label], track, length, size))
    return annotations


def _annotation(
    ann_id: int, video_id: int, category_id: int, track: _ReadTrack, length: int, size: tuple[int, int]
) -> dict[str, Any]:
    segmentations: list[Any] = [None] * length
    bboxes: list[Any] = [None] * length
    areas: list[Any] = [None] * length
    for t, mask in track.frames.items():
        rle = encode_mask(mask)
        compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        segmentations[t] = rle
        bboxes[t] = [float(v) for v in mask_utils.toBbox(compressed)]
        areas[t] = int(mask.sum())
    entry: dict[str, Any] = {
        "id": ann_id,
        "video_id": video_id,
        "category_id": category_id,
        "iscrowd": 0,
        "height": size[0],
        "width": size[1],
        "length": length,
        "segmentations": segmentations,
        "bboxes": bboxes,
        "areas": areas,
    }
    if track.score is not None:
        entry["score"] = track.score
    return entry


def label_spec(categories: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The labels and attributes our files use, as CVAT's "Raw" label editor takes them (JSON)."""
    return [
        {
            "name": str(c["name"]),
            "type": "any",
            "attributes": [
                {
                    "name": name,
                    "mutable": False,
                    "input_type": input_type,
                    "default_value": default,
                    "values": values.split("\n") if values else [],
                }
                for name, input_type, default, values in ATTRIBUTES
            ],
        }
        for c in categories
    ]
