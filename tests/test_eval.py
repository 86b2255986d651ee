"""Properties of the YouTube-VIS metric and the loader's refusals (vistr_core.eval)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from vistr_core.errors import DatasetError, ResultsError
from vistr_core.eval import STAT_NAMES, evaluate_ytvis
from vistr_core.eval.loading import load_ground_truth, load_results
from vistr_core.eval.video_iou import video_iou

H, W = 40, 60


def rle(mask: np.ndarray) -> dict:
    out = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in out["size"]], "counts": out["counts"].decode("ascii")}


def box(y0: int, x0: int, y1: int, x1: int, h: int = H, w: int = W) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def make_gt(tracks: list[tuple[int, int, list[np.ndarray | None]]], *, lengths=None, crowd=()) -> dict:
    """tracks: (video_id, category_id, masks per frame)."""
    lengths = lengths or {}
    vids = sorted({v for v, _, _ in tracks} | set(lengths))
    videos = []
    for v in vids:
        n = lengths.get(v) or len(next(m for vv, _, m in tracks if vv == v))
        videos.append({"id": v, "height": H, "width": W, "length": n})
    anns = []
    for i, (v, c, masks) in enumerate(tracks):
        anns.append(
            {
                "id": i + 1,
                "video_id": v,
                "category_id": c,
                "iscrowd": int(i in crowd),
                "segmentations": [None if m is None else rle(m) for m in masks],
                "areas": [None if m is None else float(m.sum()) for m in masks],
            }
        )
    cats = [{"id": c, "name": f"cat{c}"} for c in (1, 2, 3)]
    return {"videos": videos, "categories": cats, "annotations": anns}


def pred(v: int, c: int, score: float, masks: list[np.ndarray | None]) -> dict:
    return {
        "video_id": v,
        "category_id": c,
        "score": score,
        "segmentations": [None if m is None else rle(m) for m in masks],
    }


@pytest.fixture
def scene():
    """Three videos, several categories, small / medium-sized objects and absent frames."""
    rng = np.random.default_rng(3)
    tracks = []
    for v in (1, 2, 3):
        for c in (1, 2):
            y, x = int(rng.integers(0, 20)), int(rng.integers(0, 30))
            hh, ww = int(rng.integers(5, 20)), int(rng.integers(5, 30))
            masks = [box(y + t, x, y + t + hh, x + ww) for t in range(4)]
            if v == 2:
                masks[1] = None
            tracks.append((v, c, masks))
    return make_gt(tracks), tracks


def perfect(tracks, score=0.9):
    return [pred(v, c, score - 0.01 * i, masks) for i, (v, c, masks) in enumerate(tracks)]


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


def test_perfect_predictions_score_one(scene):
    gt, tracks = scene
    stats = evaluate_ytvis(gt, perfect(tracks)).stats
    assert list(stats) == list(STAT_NAMES)
    for name in ("AP", "AP50", "AP75", "AR10", "AR100", "APs", "ARs"):
        assert stats[name] == pytest.approx(1.0), name
    assert stats["APl"] == -1.0 and stats["ARl"] == -1.0  # no large object at all


@pytest.mark.parametrize("seed", range(8))
def test_a_low_score_false_positive_never_raises_ap(scene, seed):
    gt, tracks = scene
    rng = np.random.default_rng(seed)
    preds = [
        pred(
            v,
            c,
            float(rng.random()) * 0.8 + 0.2,
            [None if m is None else np.roll(m, int(rng.integers(-3, 4)), 1) for m in masks],
        )
        for v, c, masks in tracks
    ]
    before = evaluate_ytvis(gt, preds).stats
    fp = pred(int(rng.integers(1, 4)), int(rng.integers(1, 3)), 0.1, [box(0, 0, 30, 50)] * 4)
    after = evaluate_ytvis(gt, [*preds, fp]).stats
    for name in ("AP", "AP50", "AP75", "APs", "APm"):
        assert after[name] <= before[name] + 1e-15, name


def test_duplicates_count_as_false_positives():
    a, b = box(0, 0, 10, 10), box(5, 5, 20, 30)
    gt = make_gt([(1, 1, [a, a]), (2, 1, [b, b])])
    preds = [pred(1, 1, 0.9, [a, a]), pred(1, 1, 0.7, [a, a]), pred(2, 1, 0.5, [b, b])]
    stats = evaluate_ytvis(gt, preds).stats
    # TP (p 1, r .5), duplicate FP, TP (p 2/3, r 1): 51 recall points at 1, 50 at 2/3
    expected = (51 * 1.0 + 50 * (2 / (2 + 1 + np.spacing(1)))) / 101
    assert stats["AP50"] == pytest.approx(expected, abs=1e-12)
    assert stats["AR100"] == pytest.approx(1.0)
    without_dup = evaluate_ytvis(gt, [preds[0], preds[2]]).stats
    assert without_dup["AP50"] == pytest.approx(1.0)


def test_crowd_ground_truth_is_ignored(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    base = evaluate_ytvis(gt, preds).stats
    crowd_mask = box(25, 40, 40, 60)
    with_crowd = copy.deepcopy(gt)
    with_crowd["annotations"].append(
        {
            "id": 99,
            "video_id": 1,
            "category_id": 1,
            "iscrowd": 1,
            "segmentations": [rle(crowd_mask)] * 4,
            "areas": [float(crowd_mask.sum())] * 4,
        }
    )
    # unmatched crowd: no missed detection; two predictions on the crowd: neither is a false positive
    on_crowd = [pred(1, 1, 0.95, [crowd_mask] * 4), pred(1, 1, 0.94, [crowd_mask] * 4)]
    assert evaluate_ytvis(with_crowd, preds).stats == base
    crowded = evaluate_ytvis(with_crowd, preds + on_crowd).stats
    # (AR1 drops: a crowd match still takes the one slot maxDets=1 allows in that unit)
    assert {k: v for k, v in crowded.items() if k != "AR1"} == {k: v for k, v in base.items() if k != "AR1"}
    # the same track without iscrowd is a regular object: the predictions on it now count
    regular = copy.deepcopy(with_crowd)
    regular["annotations"][-1]["iscrowd"] = 0
    assert evaluate_ytvis(regular, preds).stats["AR100"] < 1.0


def test_null_frame_and_empty_mask_score_the_same(scene):
    gt, tracks = scene
    rng = np.random.default_rng(0)
    preds = []
    for v, c, masks in tracks:
        shifted = [None if m is None or rng.random() < 0.3 else np.roll(m, 2, 0) for m in masks]
        preds.append(pred(v, c, float(rng.random()), shifted))
    empty = rle(np.zeros((H, W), dtype=bool))
    filled = copy.deepcopy(preds)
    for p in filled:
        p["segmentations"] = [s if s is not None else dict(empty) for s in p["segmentations"]]
    gt_filled = copy.deepcopy(gt)
    for a in gt_filled["annotations"]:
        a["segmentations"] = [s if s is not None else dict(empty) for s in a["segmentations"]]
    a = evaluate_ytvis(gt, preds).stats
    assert evaluate_ytvis(gt, filled).stats == a
    assert evaluate_ytvis(gt_filled, filled).stats == a
    assert any(s is None for p in preds for s in p["segmentations"])


def test_counts_as_bytes_or_str_and_every_gt_encoding_agree(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    as_bytes = copy.deepcopy(preds)
    for p in as_bytes:
        p["segmentations"] = [
            None if s is None else {**s, "counts": s["counts"].encode()} for s in p["segmentations"]
        ]
    base = evaluate_ytvis(gt, preds).stats
    assert evaluate_ytvis(gt, as_bytes).stats == base
    # ground truth as polygons and as uncompressed RLE (boxes are exact as polygons)
    poly, unc = copy.deepcopy(gt), copy.deepcopy(gt)
    for ann_p, ann_u, (_, _, masks) in zip(poly["annotations"], unc["annotations"], tracks, strict=True):
        for t, m in enumerate(masks):
            if m is None:
                continue
            ys, xs = np.nonzero(m)
            y0, x0, y1, x1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
            ann_p["segmentations"][t] = [[x0, y0, x1, y0, x1, y1, x0, y1]]
            flat = m.astype(np.uint8).flatten(order="F")
            edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
            runs = np.diff(edges).tolist()
            ann_u["segmentations"][t] = {"size": [H, W], "counts": ([0] if flat[0] else []) + runs}
    assert evaluate_ytvis(poly, preds).stats == base
    assert evaluate_ytvis(unc, preds).stats == base


def test_video_iou_is_a_ratio_of_sums_not_a_mean_of_frame_ious():
    g = [box(0, 0, 10, 10), box(0, 0, 10, 10)]  # 100 px each
    d = [box(0, 0, 10, 10), box(0, 0, 10, 5)]  # frame ious 1.0 and 0.5
    gt = load_ground_truth(make_gt([(1, 1, g)]))
    dt = load_results([pred(1, 1, 0.5, d)], gt)
    iou = video_iou(dt, gt.tracks)
    assert iou.shape == (1, 1)
    assert iou[0, 0] == (100 + 50) / (100 + 100)


def test_area_ranges_use_the_mean_present_area_with_inclusive_bounds():
    gt = make_gt([(1, 1, [box(0, 0, 10, 10)])])
    for value, small, medium in ((128.0**2, 1.0, 1.0), (128.0**2 + 1, -1.0, 1.0), (128.0**2 - 1, 1.0, -1.0)):
        g = copy.deepcopy(gt)
        g["annotations"][0]["areas"] = [value]
        stats = evaluate_ytvis(g, [pred(1, 1, 0.9, [box(0, 0, 10, 10)])]).stats
        assert (stats["APs"], stats["APm"]) == (pytest.approx(small), pytest.approx(medium)), value


def test_gt_without_areas_uses_its_mask_areas(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    no_areas = copy.deepcopy(gt)
    for a in no_areas["annotations"]:
        del a["areas"]
    assert evaluate_ytvis(no_areas, preds).stats == evaluate_ytvis(gt, preds).stats


def test_empty_results_score_zero_where_ground_truth_exists(scene):
    gt, _ = scene
    result = evaluate_ytvis(gt, [])
    for name in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"):
        assert result.stats[name] == 0.0, name
    assert result.stats["APl"] == -1.0
    assert result.per_category[3]["AP"] == -1.0  # no ground truth of category 3
    assert result.per_category[1]["AP"] == 0.0


def test_per_category_ap_and_json(scene):
    gt, tracks = scene
    preds = [p for p in perfect(tracks) if p["category_id"] == 1]
    result = evaluate_ytvis(gt, preds)
    assert result.per_category[1]["AP"] == pytest.approx(1.0)
    assert result.per_category[2]["AP"] == 0.0
    out = json.loads(json.dumps(result.to_json()))
    assert list(out)[:12] == list(STAT_NAMES)
    assert out["per_category"]["1"] == {"name": "cat1", "AP": pytest.approx(1.0)}


def test_per_video_reports(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    v, c, masks = tracks[0]
    preds[0] = pred(v, c, preds[0]["score"], [None if m is None else np.roll(m, 3, 1) for m in masks])
    preds.append(pred(3, 2, 0.99, [box(0, 0, 5, 5)] * 4))  # confident false positive
    result = evaluate_ytvis(gt, preds, per_video=True)
    units = {(u.video_id, u.category_id): u for u in result.units}
    assert len(units) == 6
    worst = units[1, 1]
    assert 0 < worst.mean_best_iou < 1
    fp_unit = units[3, 2]
    assert (fp_unit.tp50, fp_unit.fp50, fp_unit.fn50) == (1, 1, 0)
    assert fp_unit.top_fp_score == pytest.approx(0.99)
    assert units[2, 1].ap == pytest.approx(1.0) and units[2, 1].best_iou == {3: 1.0}


def test_progress_reports_every_video(scene):
    gt, tracks = scene
    updates = []
    evaluate_ytvis(gt, perfect(tracks), progress=updates.append)
    assert [u.completed for u in updates if not u.done] == [1, 2, 3]
    assert updates[-1].done and updates[-1].total == 3


# ---------------------------------------------------------------------------------------------
# Refusals: one line naming file, video and frame
# ---------------------------------------------------------------------------------------------


def _one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_unknown_video_id(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    preds[2]["video_id"] = 77
    with pytest.raises(ResultsError) as err:
        evaluate_ytvis(gt, preds)
    assert "result #2" in _one_line(err.value) and "video id 77" in str(err.value)


def test_wrong_frame_count(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    preds[1]["segmentations"].append(None)
    with pytest.raises(ResultsError) as err:
        evaluate_ytvis(gt, preds)
    assert (
        "video 1" in _one_line(err.value) and "5 entries" in str(err.value) and "4 frames" in str(err.value)
    )


def test_wrong_mask_size(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    preds[4]["segmentations"][2] = rle(np.zeros((20, 30), dtype=bool))
    with pytest.raises(ResultsError) as err:
        evaluate_ytvis(gt, preds)
    msg = _one_line(err.value)
    assert "video 3" in msg and "frame 2" in msg and "20x30" in msg and f"{H}x{W}" in msg


def test_unknown_category(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    preds[0]["category_id"] = 41
    with pytest.raises(ResultsError, match="category id 41"):
        evaluate_ytvis(gt, preds)


@pytest.mark.parametrize("key", ["video_id", "category_id", "score", "segmentations"])
def test_missing_result_keys(scene, key):
    gt, tracks = scene
    preds = perfect(tracks)
    del preds[0][key]
    with pytest.raises(ResultsError, match=f"missing key.*'{key}'"):
        evaluate_ytvis(gt, preds)


def test_bad_score_and_polygon_results(scene):
    gt, tracks = scene
    preds = perfect(tracks)
    preds[0]["score"] = float("nan")
    with pytest.raises(ResultsError, match="finite number"):
        evaluate_ytvis(gt, preds)
    preds = perfect(tracks)
    preds[0]["segmentations"][0] = [[0, 0, 5, 0, 5, 5]]
    with pytest.raises(ResultsError, match="frame 0.*not polygons"):
        evaluate_ytvis(gt, preds)


def test_malformed_json_names_file_line_and_column(tmp_path, scene):
    gt, _ = scene
    bad = tmp_path / "results.json"
    bad.write_text('[\n  {"video_id": 1,\n   "score": }\n]')
    with pytest.raises(ResultsError) as err:
        evaluate_ytvis(gt, bad)
    assert f"{bad}:3:" in _one_line(err.value)
    bad_gt = tmp_path / "gt.json"
    bad_gt.write_text("{")
    with pytest.raises(DatasetError, match=r"gt.json:1:2: malformed JSON"):
        evaluate_ytvis(bad_gt, [])


def test_results_must_be_a_list(scene):
    gt, _ = scene
    with pytest.raises(ResultsError, match="expected a JSON list"):
        evaluate_ytvis(gt, {"predictions": []})
    with pytest.raises(
        ResultsError, match="is a ground truth, not a results list; were --gt and --results swapped"
    ):
        evaluate_ytvis(gt, gt)


def test_ground_truth_refusals(scene):
    gt, _ = scene
    bad = copy.deepcopy(gt)
    bad["annotations"][0]["segmentations"].pop()
    with pytest.raises(DatasetError, match=r"annotation 1 \(video 1\).*3 entries.*4 frames"):
        evaluate_ytvis(bad, [])
    bad = copy.deepcopy(gt)
    bad["annotations"][1]["id"] = 1
    with pytest.raises(DatasetError, match="annotation id 1 appears twice"):
        evaluate_ytvis(bad, [])
    bad = copy.deepcopy(gt)
    bad["annotations"] = None
    with pytest.raises(DatasetError, match="no annotations"):
        evaluate_ytvis(bad, [])
    bad = copy.deepcopy(gt)
    del bad["videos"][0]["height"]
    with pytest.raises(DatasetError, match=r"videos\[0\]: missing key\(s\) 'height'"):
        evaluate_ytvis(bad, [])
    bad = copy.deepcopy(gt)
    bad["annotations"][2]["segmentations"][0] = {"size": [10, 10], "counts": "00"}
    with pytest.raises(DatasetError, match=r"annotation 3 \(video 2\), frame 0: mask size 10x10"):
        evaluate_ytvis(bad, [])


def test_results_from_a_file_and_from_a_submission_zip(tmp_path, scene):
    import zipfile

    gt, tracks = scene
    preds = perfect(tracks)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(preds))
    archive = tmp_path / "submission.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("results.json", json.dumps(preds))
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    base = evaluate_ytvis(gt, preds).stats
    assert evaluate_ytvis(gt_path, path).stats == base
    assert evaluate_ytvis(gt_path, archive).stats == base
    assert len(load_results(path, load_ground_truth(gt_path))) == len(preds)


def test_annotation_id_zero_reproduces_the_official_quirk_and_warns():
    """The official API stores the matched GT id and tests its truthiness: a match to id 0 is a FP."""
    a = box(0, 0, 10, 10)
    gt = make_gt([(1, 1, [a])])
    preds = [pred(1, 1, 0.9, [a])]
    assert evaluate_ytvis(gt, preds).stats["AP50"] == pytest.approx(1.0)
    gt["annotations"][0]["id"] = 0
    result = evaluate_ytvis(gt, preds)
    assert result.stats["AP50"] == 0.0 and result.stats["AR100"] == 0.0
    assert any("id 0" in w for w in result.warnings)
