"""The long-video benchmark's split of the videos by whether two objects share a class, and its pooling
over seeds (benchmarks/long_video_ap.py: the README's per-part figures come from these)."""

import sys
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import long_video_ap as bench  # noqa: E402


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _square(x: int) -> np.ndarray:
    mask = np.zeros((16, 16), bool)
    mask[4:10, x : x + 6] = True
    return mask


def _dataset() -> dict:
    """Video 1: two objects of category 1; video 2: categories 1 and 2; video 3: one object."""
    objects = [(1, 1, 0), (2, 1, 8), (3, 1, 0), (4, 2, 8), (5, 2, 4)]
    videos = [1, 1, 2, 2, 3]
    return {
        "videos": [{"id": v, "width": 16, "height": 16, "length": 2} for v in (1, 2, 3)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {
                "id": k,
                "video_id": video,
                "category_id": category,
                "segmentations": [_rle(_square(x))] * 2,
                "areas": [36, 36],
                "bboxes": [[x, 4, 6, 6]] * 2,
                "iscrowd": 0,
            }
            for (k, category, x), video in zip(objects, videos, strict=True)
        ],
    }


def _prediction(video: int, category: int, x: int, score: float) -> dict:
    return {
        "video_id": video,
        "category_id": category,
        "score": score,
        "segmentations": [_rle(_square(x))] * 2,
    }


def test_videos_sharing_a_class() -> None:
    assert bench.videos_sharing_a_class(_dataset()) == {1}


def test_restricted_keeps_only_the_chosen_videos() -> None:
    truth = _dataset()
    results = [_prediction(1, 1, 0, 0.9), _prediction(2, 2, 8, 0.8), _prediction(3, 2, 4, 0.7)]
    kept, kept_results = bench.restricted(truth, results, {2, 3})
    assert [v["id"] for v in kept["videos"]] == [2, 3]
    assert {a["video_id"] for a in kept["annotations"]} == {2, 3}
    assert [r["video_id"] for r in kept_results] == [2, 3]
    assert kept["categories"] == truth["categories"]
    assert len(truth["videos"]) == 3  # the input is not changed


def test_scores_of_a_part_are_its_own() -> None:
    """Perfect predictions on the videos without a shared class, none on the other: AP 1 and 0."""
    truth = _dataset()
    results = [_prediction(2, 1, 0, 0.9), _prediction(2, 2, 8, 0.9), _prediction(3, 2, 4, 0.9)]
    unique = bench._scores(*bench.restricted(truth, results, {2, 3}))
    shared = bench._scores(*bench.restricted(truth, results, {1}))
    assert unique == {"AP": 1.0, "AP50": 1.0, "videos": 2}
    assert shared["AP"] == 0.0 and shared["videos"] == 1
    assert bench._scores(*bench.restricted(truth, results, set())) == {"AP": None, "AP50": None, "videos": 0}


def test_pooling_skips_sets_without_videos_of_a_part() -> None:
    def part(ap: float | None, videos: int) -> dict:
        return {"AP": ap, "AP50": ap, "videos": videos}

    def kind(ap: float, shared: float | None, unique: float, objects: int = 4) -> dict:
        one_id = {"objects": objects, "one_id": ap, "own_id": ap, "ids_per_object": 1.0}
        return {
            **part(ap, 3),
            "shared_class": part(shared, 0 if shared is None else 1),
            "unique_classes": part(unique, 2),
            "identities": {**one_id, "id_changes_per_object": 0.0, "frames_with_id": 1.0},
        }

    per_seed = {
        1: {"clip": kind(0.6, 0.4, 0.8), "long": kind(0.3, 0.2, 0.4)},
        2: {"clip": kind(0.4, None, 0.4), "long": kind(0.2, None, 0.2, objects=12)},
    }
    pooled = bench._pooled(per_seed)
    assert pooled["identities"]["clip"]["one_id"] == 0.5 and pooled["identities"]["clip"]["objects"] == 8
    assert pooled["identities"]["long"]["one_id"] == 0.225  # (0.3 * 4 + 0.2 * 12) / 16
    assert pooled["clip"] == {"AP": 0.5, "AP50": 0.5} and pooled["ratio"] == 0.5
    assert pooled["shared_class"]["clip"]["AP"] == 0.4  # seed 2 has no such video
    assert pooled["shared_class"]["ratio"] == 0.5
    assert pooled["unique_classes"]["long"]["AP"] == 0.3 and pooled["unique_classes"]["ratio"] == 0.5


class _CountingModel(torch.nn.Module):
    """Outputs that depend on the frames (and on autocast), and a count of forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(1.5))
        self.calls = 0

    def forward(self, frames: torch.Tensor, pad_mask: torch.Tensor | None = None) -> dict:
        self.calls += 1
        mean = (frames.flatten(2) @ torch.ones(frames[0, 0].numel(), 1)).squeeze(-1) * self.weight  # [B, T]
        return {
            "pred_logits": mean[:, None, :, None].expand(-1, 2, -1, 3),
            "pred_boxes": mean[:, None, :, None].expand(-1, 2, -1, 4).sigmoid(),
            "pred_masks": mean[:, None, :, None, None].expand(-1, 2, -1, 4, 4),
        }


def test_memoized_forward_answers_a_seen_window_from_memory_with_the_same_outputs():
    model = _CountingModel()
    frames = torch.randn(1, 3, 3, 8, 8)
    expected = model(frames)
    cache = bench.memoize_forward(model)
    first, again = model(frames), model(frames.clone())
    assert model.calls == 2 and len(cache) == 1  # one pass before memoizing, one to fill the cache
    for key, value in expected.items():
        assert torch.equal(first[key], value) and torch.equal(again[key], value)
    other = model(frames + 1)
    assert model.calls == 3 and not torch.equal(other["pred_masks"], first["pred_masks"])
    with torch.autocast("cpu", torch.bfloat16):  # another precision is another answer
        model(frames)
    assert model.calls == 4 and len(cache) == 3
    model(frames, torch.zeros(1, 3, 8, 8, dtype=torch.bool))  # padded windows are never remembered
    assert model.calls == 5 and len(cache) == 3
