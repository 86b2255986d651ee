"""Does a model keep its identities through long videos? Video AP on long held-out videos against
the AP of the same model on 24-frame clips of the same synthetic generator.

The official YouTube-VIS metric scores a track over the whole video (Σ intersection / Σ union over
every frame), so a track that fragments or switches identity in a 240-frame video is a miss there,
while the same model may be right on every 24-frame clip. The ratio long AP / clip AP measures what
window linking loses; each linking setting of the grid is scored on the same window predictions
(the model runs once per window; later settings read its outputs from memory).
Ten long videos are few (one model scored a ratio of 0.73 on one draw and 0.48 on another), so
every setting is scored on the videos of each ``--seed`` and the headline ratio is mean long AP /
mean clip AP over the seeds.

    python benchmarks/long_video_ap.py --checkpoint RUN/last.pt [--difficulty multi]
        [--clips 30] [--long-videos 10] [--long-frames 240]
        [--overlap 1 2] [--link-iou 0.3 0.5] [--class-penalty 0.2 0.5] [--slot-bonus 0 0.3]
        [--max-gap 0 4] [--resume-iou 0.1 0.3] [--coverage-power 0 0.25] [--dedup-iou 0.5]
        [--merge-iou 0 0.1] [--relink-colour 0 30] [--size 192x256] [--seed 101 202 303 404]
        [--ground-truth-linking] [--out FILE]

Every row also gives these figures for the videos with two or more objects of one class and for the
others: where two objects share a class, only their positions and motion tell them apart.

``--ground-truth-linking`` adds, for each setting, a row whose window linking reads the answer key
(``ground_truth_linking.py``): the most any linking rule could get from the model's windows.

Prints one line per setting and writes benchmarks/results/long_video_ap.json (or --out; with the
CPU model).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import torch

from vistr_core import load_model
from vistr_core.config import InferConfig
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.eval.ytvis_eval import evaluate_ytvis
from vistr_core.inference.split import predict_split

sys.path.insert(0, str(Path(__file__).parent))
from ground_truth_linking import predict_with_ground_truth_linking  # noqa: E402
from identities import identity_summary  # noqa: E402
from machine import cpu_info  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "long_video_ap.json"


def videos_sharing_a_class(ground_truth: dict) -> set[int]:
    """Ids of the videos in which two or more annotated objects have the same category."""
    seen: dict[int, set[int]] = {}
    shared = set()
    for ann in ground_truth["annotations"]:
        categories = seen.setdefault(ann["video_id"], set())
        if ann["category_id"] in categories:
            shared.add(ann["video_id"])
        categories.add(ann["category_id"])
    return shared


def restricted(ground_truth: dict, results: list[dict], video_ids: set[int]) -> tuple[dict, list[dict]]:
    """The ground truth and results of the videos in ``video_ids`` only (categories kept)."""
    kept = {
        **ground_truth,
        "videos": [v for v in ground_truth["videos"] if v["id"] in video_ids],
        "annotations": [a for a in ground_truth["annotations"] if a["video_id"] in video_ids],
    }
    return kept, [r for r in results if r["video_id"] in video_ids]


def _scores(ground_truth: dict, results: list[dict]) -> dict[str, float | None]:
    if not ground_truth["videos"]:
        return {"AP": None, "AP50": None, "videos": 0}
    stats = evaluate_ytvis(ground_truth, results).stats
    return {
        "AP": round(stats["AP"], 4),
        "AP50": round(stats["AP50"], 4),
        "videos": len(ground_truth["videos"]),
    }


def _ap(model, root: Path, infer: InferConfig, ground_truth_linking: bool = False) -> dict[str, object]:
    """AP / AP50 over all videos, and over those with / without two objects of one class (where
    identities can only be told apart by position and motion, not by class)."""
    if ground_truth_linking:
        results, ground_truth = predict_with_ground_truth_linking(model, root, "valid", infer)
    else:
        results, ground_truth = predict_split(root, "valid", model=model, infer=infer)
    shared = videos_sharing_a_class(ground_truth)
    others = {v["id"] for v in ground_truth["videos"]} - shared
    return {
        **_scores(ground_truth, results),
        "tracks": len(results),
        "identities": identity_summary(ground_truth, results),
        "shared_class": _scores(*restricted(ground_truth, results, shared)),
        "unique_classes": _scores(*restricted(ground_truth, results, others)),
    }


def _ratio(long: dict[str, float | None], clip: dict[str, float | None]) -> float | None:
    if long["AP"] is None or not clip["AP"]:
        return None
    return round(long["AP"] / clip["AP"], 3)


def _mean(rows: list[dict], metric: str) -> float | None:
    values = [r[metric] for r in rows if r["videos"]]  # a set may have no video of a kind
    return round(sum(values) / len(values), 4) if values else None


def _pooled(per_seed: dict[int, dict[str, dict]]) -> dict[str, object]:
    """Mean clip and long AP / AP50 over the seeds' video sets, and their ratio; the same for the
    videos with and without two objects of one class."""
    pooled: dict[str, object] = {}
    for part in (None, "shared_class", "unique_classes"):
        mean = {
            kind: {
                m: _mean([r[kind] if part is None else r[kind][part] for r in per_seed.values()], m)
                for m in ("AP", "AP50")
            }
            for kind in ("clip", "long")
        }
        ratio = {"ratio": _ratio(mean["long"], mean["clip"])}
        pooled.update({**mean, **ratio} if part is None else {part: {**mean, **ratio}})
    pooled["identities"] = {
        kind: _pooled_identities([r[kind]["identities"] for r in per_seed.values()])
        for kind in ("clip", "long")
    }
    return pooled


def _pooled_identities(parts: list[dict]) -> dict[str, float | int]:
    """The seeds' identity summaries (:func:`identities.identity_summary`) as one, each figure
    weighted by its seed's number of objects."""
    objects = sum(p["objects"] for p in parts)
    pooled: dict[str, float | int] = {"objects": objects}
    for key in ("one_id", "own_id", "ids_per_object", "id_changes_per_object", "frames_with_id"):
        pooled[key] = round(sum(p[key] * p["objects"] for p in parts) / max(objects, 1), 4)
    return pooled


def _score_setting(
    model, sets: dict[int, tuple[Path, Path]], infer: InferConfig, linking: str
) -> dict[str, object]:
    """One row: clip and long AP of every seed's video sets, pooled over the seeds."""
    started = time.perf_counter()
    truth = linking == "ground truth"
    per_seed = {
        seed: {"clip": _ap(model, c, infer, truth), "long": _ap(model, v, infer, truth)}
        for seed, (c, v) in sets.items()
    }
    return {
        "linking": linking,
        "overlap": infer.overlap,
        "link_iou": infer.link_iou,
        "class_penalty": infer.class_penalty,
        "slot_bonus": infer.slot_bonus,
        "max_gap": infer.max_gap if not truth else 0,
        "resume_iou": infer.resume_iou,
        "coverage_power": infer.coverage_power,
        "dedup_iou": infer.dedup_iou,
        "merge_iou": infer.merge_iou,
        "colour_weight": infer.colour_weight,
        "colour_scale": infer.colour_scale,
        "relink_colour": infer.relink_colour,
        **_pooled(per_seed),
        "per_seed": {str(seed): {**r, "ratio": _ratio(r["long"], r["clip"])} for seed, r in per_seed.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def memoize_forward(model: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Make ``model`` answer a window it has seen from memory, so that every setting of the grid
    costs one model pass over the videos: the settings act after the forward. Keyed by the
    frames' bytes and the autocast dtype; returns the cache (outputs in float32, on the CPU: about
    1 GB for the default four sets of the tiny model)."""
    cache: dict[str, dict[str, torch.Tensor]] = {}
    forward = model.forward

    def remembered(frames: torch.Tensor, pad_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        dtype = (
            torch.get_autocast_dtype(frames.device.type)
            if torch.is_autocast_enabled(frames.device.type)
            else None
        )
        key = hashlib.md5(frames.detach().float().cpu().numpy().tobytes()).hexdigest() + str(dtype)
        if pad_mask is not None or key not in cache:
            out = forward(frames, pad_mask)
            if pad_mask is not None:
                return out
            cache[key] = {k: out[k].float().cpu() for k in ("pred_logits", "pred_boxes", "pred_masks")}
        return {k: v.to(frames.device) for k, v in cache[key].items()}

    model.forward = remembered
    return cache


def read_forward_cache(path: Path, checkpoint_digest: str) -> dict[str, dict[str, torch.Tensor]]:
    """The window outputs ``--forward-cache`` saved, if they came from the same checkpoint (a cache
    is keyed by the frames alone, so another model's outputs would pass silently)."""
    saved = pickle.loads(path.read_bytes())
    if saved.get("checkpoint_sha256") != checkpoint_digest:
        sys.exit(f"{path}: saved from another checkpoint; delete it or pass another --forward-cache")
    return saved["windows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--difficulty", default="multi")
    parser.add_argument("--clips", type=int, default=30, help="24-frame held-out videos")
    parser.add_argument("--long-videos", type=int, default=10)
    parser.add_argument("--long-frames", type=int, default=240)
    parser.add_argument("--size", default="192x256", help="HxW of the synthetic frames (the quickstart's)")
    parser.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[101, 202, 303, 404],
        help="generator seeds (never a training seed)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON report")
    parser.add_argument("--overlap", type=int, nargs="+", default=[None])
    parser.add_argument("--link-iou", type=float, nargs="+", default=[InferConfig.link_iou])
    parser.add_argument("--class-penalty", type=float, nargs="+", default=[InferConfig.class_penalty])
    parser.add_argument("--slot-bonus", type=float, nargs="+", default=[InferConfig.slot_bonus])
    parser.add_argument("--max-gap", type=int, nargs="+", default=[None])
    parser.add_argument("--resume-iou", type=float, nargs="+", default=[InferConfig.resume_iou])
    parser.add_argument("--coverage-power", type=float, nargs="+", default=[InferConfig.coverage_power])
    parser.add_argument(
        "--dedup-iou", type=float, nargs="+", default=[None], help="values; 0 stands for off (None)"
    )
    parser.add_argument(
        "--merge-iou", type=float, nargs="+", default=[None], help="values; 0 stands for off (None)"
    )
    parser.add_argument("--colour-weight", type=float, nargs="+", default=[InferConfig.colour_weight])
    parser.add_argument("--colour-scale", type=float, nargs="+", default=[InferConfig.colour_scale])
    parser.add_argument(
        "--relink-colour",
        type=float,
        nargs="+",
        default=[InferConfig.relink_colour or 0.0],
        help="values; 0 stands for off (None)",
    )
    parser.add_argument(
        "--ground-truth-linking",
        action="store_true",
        help="also score each setting with identities from the answer key (the linking's upper bound)",
    )
    parser.add_argument(
        "--forward-cache",
        type=Path,
        default=None,
        help="pickle of the model's outputs per window, read if it exists and written after: a rerun "
        "of the same checkpoint and seeds with other settings makes no model pass (about 1.4 GB for "
        "six seeds; load only a file you wrote)",
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.split("x"))
    model = load_model(args.checkpoint)
    cache = memoize_forward(model)
    if args.forward_cache is not None:  # the checkpoint read a second time only for this
        checkpoint_digest = hashlib.sha256(Path(args.checkpoint).read_bytes()).hexdigest()
        if args.forward_cache.exists():
            cache.update(read_forward_cache(args.forward_cache, checkpoint_digest))
    known = len(cache)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {}
        for seed in args.seed:
            clips, long = Path(tmp) / f"clips_{seed}", Path(tmp) / f"long_{seed}"
            common = {"videos": 1, "size": (height, width), "seed": seed, "difficulty": args.difficulty}
            generate_synthetic(clips, valid_videos=args.clips, frames=24, **common)
            generate_synthetic(long, valid_videos=args.long_videos, frames=args.long_frames, **common)
            sets[seed] = (clips, long)
        grid = itertools.product(
            args.overlap,
            args.link_iou,
            args.class_penalty,
            args.slot_bonus,
            args.max_gap,
            args.resume_iou,
            args.coverage_power,
            args.dedup_iou,
            args.merge_iou,
            args.colour_weight,
            args.colour_scale,
            args.relink_colour,
        )
        linkings = ("rule", "ground truth") if args.ground_truth_linking else ("rule",)
        scored_with_truth: set[tuple[object, ...]] = set()
        for (
            overlap,
            link_iou,
            class_penalty,
            slot_bonus,
            max_gap,
            resume_iou,
            coverage_power,
            dedup_iou,
            merge_iou,
            colour_weight,
            colour_scale,
            relink_colour,
        ), linking in itertools.product(grid, linkings):
            infer = InferConfig(
                overlap=overlap,
                link_iou=link_iou,
                class_penalty=class_penalty,
                slot_bonus=slot_bonus,
                max_gap=max_gap,
                resume_iou=resume_iou,
                coverage_power=coverage_power,
                dedup_iou=dedup_iou or None,
                merge_iou=merge_iou or None,
                colour_weight=colour_weight,
                colour_scale=colour_scale,
                relink_colour=relink_colour or None,
            )
            if linking == "ground truth":  # it reads no linking option: once per overlap, dedup and score
                key = (overlap, coverage_power, infer.dedup_iou, infer.merge_iou)
                if key in scored_with_truth:
                    continue
                scored_with_truth.add(key)
            rows.append(_score_setting(model, sets, infer, linking))
            print(json.dumps(rows[-1]), flush=True)
    report = {
        "checkpoint": str(args.checkpoint),
        "seeds": args.seed,
        "difficulty": args.difficulty,
        "clips": args.clips,
        "long_videos": args.long_videos,
        "long_frames": args.long_frames,
        "num_frames": model.num_frames,
        "cpu": cpu_info(),
        "torch": torch.__version__,
        "rows": rows,
    }
    if args.forward_cache is not None and len(cache) > known:
        saved = {"checkpoint_sha256": checkpoint_digest, "windows": cache}
        args.forward_cache.write_bytes(pickle.dumps(saved))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
