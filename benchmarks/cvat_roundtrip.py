"""What a YouTube-VIS -> CVAT for video 1.1 -> YouTube-VIS round trip keeps, per shape mode.

For ``auto`` (polygons where exact, CVAT masks otherwise), ``polygon`` and ``mask``: converts the
split to CVAT files and back (without the side-car, as if the files came from CVAT alone), then
reports identity preservation (annotation ids, category names, the frames each track is present
in) and the mask IoU per track (video IoU, Σ intersection / Σ union), mean and minimum.

    python benchmarks/cvat_roundtrip.py --data DATA [--split train]

Prints the figures and writes benchmarks/results/cvat_roundtrip.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vistr_core.data.convert import convert_dataset
from vistr_core.data.ytvis import load_ytvis


def tracks(data: Path, split: str) -> dict[tuple[int, int], tuple[str, np.ndarray]]:
    """{(video id, annotation id): (category name, masks [L, H, W])}."""
    index = load_ytvis(data, split, check_files=False)
    names = {c["id"]: c["name"] for c in index.categories}
    out = {}
    for video in index.videos:
        masks, anns = index.decode_masks(video, list(range(video.length)))
        out.update({(video.id, a.id): (names[a.category_id], m) for a, m in zip(anns, masks, strict=True)})
    return out


def round_trip(data: Path, split: str, shapes: str, tmp: Path) -> dict[str, Any]:
    started = time.perf_counter()
    convert_dataset(data, tmp / shapes, to="cvat", split=split, cvat_shapes=shapes)
    (tmp / shapes / "vistr.json").unlink()
    convert_dataset(tmp / shapes, tmp / f"{shapes}_back", to="ytvis", split=split)
    seconds = time.perf_counter() - started
    before, after = tracks(data, split), tracks(tmp / f"{shapes}_back", split)
    ious = []
    for key, (name, masks) in before.items():
        got_name, got = after[key]
        assert got_name == name and np.array_equal(masks.any((1, 2)), got.any((1, 2))), key
        ious.append(float((masks & got).sum() / max((masks | got).sum(), 1)))
    xml_bytes = sum(p.stat().st_size for p in (tmp / shapes / "annotations").iterdir())
    return {
        "tracks": len(before),
        "same_ids_classes_frames": set(before) == set(after),
        "iou_mean": round(float(np.mean(ious)), 4),
        "iou_min": round(float(np.min(ious)), 4),
        "exact_tracks": sum(iou == 1.0 for iou in ious),
        "xml_mb": round(xml_bytes / 1e6, 2),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cvat_roundtrip.json")
    args = parser.parse_args()
    report: dict[str, Any] = {"data": str(args.data), "split": args.split}
    with tempfile.TemporaryDirectory() as tmp:
        for shapes in ("auto", "polygon", "mask"):
            report[shapes] = r = round_trip(args.data, args.split, shapes, Path(tmp))
            print(
                f"{shapes:8s} {r['tracks']} tracks, ids/classes/frames kept: {r['same_ids_classes_frames']}, "
                f"IoU mean {r['iou_mean']:.4f} min {r['iou_min']:.4f} ({r['exact_tracks']} exact), "
                f"XML {r['xml_mb']} MB, {r['seconds']} s"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
