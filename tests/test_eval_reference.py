"""A slow, literal transcription of the official YouTube-VIS metric, for tests only.

Written from the prose description in ytvis-format-and-eval.md §3 (loadRes, _prepare, computeIoU,
evaluateVid, accumulate, summarize), with plain Python loops over dicts and decoded boolean masks
so that it shares nothing with vistr_core.eval but pycocotools' RLE decoding.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from vistr_core.eval import evaluate_ytvis

STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _ann_to_rle(segm, h, w):
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, h, w)
    return segm


def reference_evaluate(gt_json: dict, results: list) -> tuple[dict[str, float], np.ndarray]:
    gt_json = copy.deepcopy(gt_json)
    results = copy.deepcopy(results)
    videos = {v["id"]: v for v in gt_json["videos"]}

    # loadRes: per-frame areas from the RLEs, ids 1.., iscrowd 0
    for i, r in enumerate(results):
        r["areas"] = [float(mask_utils.area(s)) if s else None for s in r["segmentations"]]
        r["id"] = i + 1
        r["iscrowd"] = 0

    # _prepare/_toMask: masks (decoded here) and avg_area = mean of truthy areas
    def to_masks(ann):
        v = videos[ann["video_id"]]
        ann["masks"] = [
            mask_utils.decode(_ann_to_rle(s, v["height"], v["width"])).astype(bool) if s else None
            for s in ann["segmentations"]
        ]
        kept = [a for a in ann["areas"] if a]
        ann["avg_area"] = np.array(kept).mean() if kept else 0

    for ann in gt_json["annotations"]:
        to_masks(ann)
        ann["ignore"] = "iscrowd" in ann and ann["iscrowd"]
    for ann in results:
        to_masks(ann)
    gts, dts = defaultdict(list), defaultdict(list)
    for ann in gt_json["annotations"]:
        gts[ann["video_id"], ann["category_id"]].append(ann)
    for ann in results:
        dts[ann["video_id"], ann["category_id"]].append(ann)

    vid_ids = sorted(videos)
    cat_ids = sorted(c["id"] for c in gt_json["categories"])
    iou_thrs = np.linspace(0.5, 0.95, 10, endpoint=True)
    rec_thrs = np.linspace(0.0, 1.0, 101, endpoint=True)
    area_rng = [[0**2, 1e5**2], [0**2, 128**2], [128**2, 256**2], [256**2, 1e5**2]]
    max_dets = [1, 10, 100]

    def iou_seq(d_seq, g_seq):
        inter, union = 0.0, 0.0
        for d, g in zip(d_seq, g_seq, strict=False):  # the official zip truncation
            if d is not None and g is not None:
                inter += np.logical_and(d, g).sum()
                union += np.logical_or(d, g).sum()
            elif g is not None:
                union += g.sum()
            elif d is not None:
                union += d.sum()
        return inter / union if union > 0 else 0.0

    def compute_iou(vid, cat):
        gt, dt = gts[vid, cat], dts[vid, cat]
        if len(gt) == 0 and len(dt) == 0:
            return []
        inds = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in inds][: max_dets[-1]]
        ious = np.zeros([len(dt), len(gt)])
        for i in range(len(dt)):
            for j in range(len(gt)):
                ious[i, j] = iou_seq(dt[i]["masks"], gt[j]["masks"])
        return ious

    all_ious = {(v, c): compute_iou(v, c) for v in vid_ids for c in cat_ids}

    def evaluate_vid(vid, cat, a_rng, max_det):
        gt, dt = gts[vid, cat], dts[vid, cat]
        if len(gt) == 0 and len(dt) == 0:
            return None
        for g in gt:
            g["_ignore"] = 1 if g["ignore"] or g["avg_area"] < a_rng[0] or g["avg_area"] > a_rng[1] else 0
        gtind = np.argsort([g["_ignore"] for g in gt], kind="mergesort")
        gt = [gt[i] for i in gtind]
        dtind = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in dtind[0:max_det]]
        iscrowd = [int(g.get("iscrowd", 0)) for g in gt]
        ious = all_ious[vid, cat]
        ious = ious[:, gtind] if len(ious) > 0 else ious
        T, G, D = len(iou_thrs), len(gt), len(dt)
        gtm, dtm = np.zeros((T, G)), np.zeros((T, D))
        gt_ig = np.array([g["_ignore"] for g in gt])
        dt_ig = np.zeros((T, D))
        if len(ious) != 0:
            for tind, t in enumerate(iou_thrs):
                for dind, d in enumerate(dt):
                    best, m = min([t, 1 - 1e-10]), -1
                    for gind in range(G):
                        if gtm[tind, gind] > 0 and not iscrowd[gind]:
                            continue
                        if m > -1 and gt_ig[m] == 0 and gt_ig[gind] == 1:
                            break
                        if ious[dind, gind] < best:
                            continue
                        best, m = ious[dind, gind], gind
                    if m == -1:
                        continue
                    dt_ig[tind, dind] = gt_ig[m]
                    dtm[tind, dind] = gt[m]["id"]
                    gtm[tind, m] = d["id"]
        outside = np.array([d["avg_area"] < a_rng[0] or d["avg_area"] > a_rng[1] for d in dt]).reshape(
            (1, len(dt))
        )
        dt_ig = np.logical_or(dt_ig, np.logical_and(dtm == 0, np.repeat(outside, T, 0)))
        return {"dtMatches": dtm, "dtScores": [d["score"] for d in dt], "gtIgnore": gt_ig, "dtIgnore": dt_ig}

    eval_vids = [evaluate_vid(v, c, a, max_dets[-1]) for c in cat_ids for a in area_rng for v in vid_ids]

    T, R, K, A, M = len(iou_thrs), len(rec_thrs), len(cat_ids), len(area_rng), len(max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    I0, A0 = len(vid_ids), len(area_rng)
    for k in range(K):
        for a in range(A):
            for m, max_det in enumerate(max_dets):
                E = [eval_vids[k * A0 * I0 + a * I0 + i] for i in range(I0)]
                E = [e for e in E if e is not None]
                if len(E) == 0:
                    continue
                scores = np.concatenate([e["dtScores"][0:max_det] for e in E])
                inds = np.argsort(-scores, kind="mergesort")
                dtm = np.concatenate([e["dtMatches"][:, 0:max_det] for e in E], axis=1)[:, inds]
                dt_ig = np.concatenate([e["dtIgnore"][:, 0:max_det] for e in E], axis=1)[:, inds]
                gt_ig = np.concatenate([e["gtIgnore"] for e in E])
                npig = np.count_nonzero(gt_ig == 0)
                if npig == 0:
                    continue
                tps = np.logical_and(dtm, np.logical_not(dt_ig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
                tp_sum = np.cumsum(tps, axis=1).astype(float)
                fp_sum = np.cumsum(fps, axis=1).astype(float)
                for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum, strict=True)):
                    nd = len(tp)
                    rc = tp / npig
                    pr = tp / (fp + tp + np.spacing(1))
                    q = np.zeros((R,))
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    pr = pr.tolist()
                    q = q.tolist()
                    for i in range(nd - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    idx = np.searchsorted(rc, rec_thrs, side="left")
                    try:
                        for ri, pi in enumerate(idx):
                            q[ri] = pr[pi]
                    except IndexError:
                        pass
                    precision[t, :, k, a, m] = np.array(q)

    labels = ["all", "small", "medium", "large"]

    def summarize(ap, iou_thr=None, area="all", max_det=100):
        aind = [i for i, lab in enumerate(labels) if lab == area]
        mind = [i for i, md in enumerate(max_dets) if md == max_det]
        if ap:
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == iou_thrs)[0]]
            s = s[:, :, :, aind, mind]
        else:
            s = recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == iou_thrs)[0]]
            s = s[:, :, aind, mind]
        return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))

    values = [
        summarize(1),
        summarize(1, iou_thr=0.5, max_det=max_dets[2]),
        summarize(1, iou_thr=0.75, max_det=max_dets[2]),
        summarize(1, area="small", max_det=max_dets[2]),
        summarize(1, area="medium", max_det=max_dets[2]),
        summarize(1, area="large", max_det=max_dets[2]),
        summarize(0, max_det=max_dets[0]),
        summarize(0, max_det=max_dets[1]),
        summarize(0, max_det=max_dets[2]),
        summarize(0, area="small", max_det=max_dets[2]),
        summarize(0, area="medium", max_det=max_dets[2]),
        summarize(0, area="large", max_det=max_dets[2]),
    ]
    return dict(zip(STATS, values, strict=True)), precision


# ----------------------------------------------------------------------------------------------
# Random ground truth / results sets
# ----------------------------------------------------------------------------------------------


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A rectangle or an ellipse covering a random fraction of the frame (large ones included)."""
    mask = np.zeros((h, w), dtype=bool)
    bh, bw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    if rng.random() < 0.5:
        mask[y0 : y0 + bh, x0 : x0 + bw] = True
    else:
        yy, xx = np.ogrid[:h, :w]
        cy, cx = y0 + bh / 2, x0 + bw / 2
        mask[((yy - cy) / (bh / 2 + 0.5)) ** 2 + ((xx - cx) / (bw / 2 + 0.5)) ** 2 <= 1] = True
    return mask


def _perturb(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    choice = rng.integers(0, 4)
    if choice == 0:
        return mask.copy()  # exact duplicate: IoU ties
    if choice == 1:
        return np.roll(mask, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
    if choice == 2:
        return mask & _blob(rng, *mask.shape) if rng.random() < 0.5 else mask | _blob(rng, *mask.shape)
    return np.zeros_like(mask)  # an empty but present mask


def _encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.astype(np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0, *runs]
    return {"size": list(mask.shape), "counts": runs}


def _polygon_of_box(mask: np.ndarray) -> list[list[float]] | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [[float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]]


def random_case(seed: int, *, many_dets: bool = False) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    num_cats = 1 if many_dets else int(rng.integers(1, 5))
    sizes = [(30, 50), (150, 200), (270, 300)]
    videos, annotations, results = [], [], []
    ann_ids = rng.permutation(400)[:200].tolist()  # may include 0: the official id-0 quirk
    tie_scores = rng.random() < 0.5
    for v in range(int(rng.integers(2, 6))):
        vid = int(rng.integers(1, 1000)) * 10 + v  # unsorted, non-contiguous ids
        h, w = sizes[int(rng.integers(0, 3))]
        h, w = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
        length = int(rng.integers(1, 6))
        videos.append(
            {
                "id": vid,
                "height": h,
                "width": w,
                "length": length,
                "file_names": [f"v{vid}/{t:05d}.jpg" for t in range(length)],
            }
        )
        gt_masks = []
        for _ in range(int(rng.integers(0, 5))):
            cat = int(rng.integers(1, num_cats + 1))
            masks = [_blob(rng, h, w) if rng.random() < 0.8 else None for _ in range(length)]
            if gt_masks and rng.random() < 0.2:  # an identical twin track: IoU ties between GTs
                masks = [None if m is None else m.copy() for m in gt_masks[-1][1]]
                cat = gt_masks[-1][0]
            gt_masks.append((cat, masks))
            segs, areas = [], []
            for m in masks:
                if m is None:
                    segs.append(None)
                    areas.append(None)
                    continue
                style = rng.integers(0, 3)
                if style == 0 and _polygon_of_box(m) is not None:
                    segs.append(_polygon_of_box(m))
                elif style == 1:
                    segs.append(_uncompressed(m))
                else:
                    segs.append(_encode(m))
                pick = rng.random()
                # JSON areas: the mask area, a boundary value, 0 (falsy, skipped) or arbitrary
                areas.append(
                    float(m.sum())
                    if pick < 0.6
                    else float(rng.choice([0, 128**2, 256**2, 128**2 + 0.5, 256**2 - 1.0, 5e4]))
                )
            annotations.append(
                {
                    "id": ann_ids.pop(),
                    "video_id": vid,
                    "category_id": cat,
                    "iscrowd": int(rng.random() < 0.15),
                    "segmentations": segs,
                    "areas": areas,
                    "height": h,
                    "width": w,
                    "length": 1,
                }
            )
        num_dets = int(rng.integers(0, 8)) + (int(rng.integers(8, 25)) if many_dets else 0)
        for _ in range(num_dets):
            if gt_masks and rng.random() < 0.7:
                cat, base = gt_masks[int(rng.integers(0, len(gt_masks)))]
                masks = [None if m is None or rng.random() < 0.1 else _perturb(rng, m) for m in base]
                if rng.random() < 0.15:
                    cat = int(rng.integers(1, num_cats + 1))
            else:
                cat = int(rng.integers(1, num_cats + 1))
                masks = [_blob(rng, h, w) if rng.random() < 0.7 else None for _ in range(length)]
            score = round(float(rng.integers(1, 6)) / 5, 1) if tie_scores else float(rng.random())
            results.append(
                {
                    "video_id": vid,
                    "category_id": cat,
                    "score": score,
                    "segmentations": [None if m is None else _encode(m) for m in masks],
                }
            )
    order = rng.permutation(len(results))
    results = [results[i] for i in order]
    categories = [{"id": c, "name": f"c{c}"} for c in range(1, num_cats + 1)]
    if not annotations:  # the evaluator refuses a ground truth without annotations
        vid = videos[0]
        annotations.append(
            {
                "id": 999,
                "video_id": vid["id"],
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": [_encode(_blob(rng, vid["height"], vid["width"]))]
                + [None] * (vid["length"] - 1),
                "areas": [1000.0] + [None] * (vid["length"] - 1),
            }
        )
    return {"videos": videos, "categories": categories, "annotations": annotations}, results


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


SEED101 = Path(__file__).parent / "fixtures" / "ytvis-eval" / "seed101"


def test_fixture_matches_the_official_api():
    expected = json.loads((SEED101 / "expected.json").read_text())
    got = evaluate_ytvis(SEED101 / "gt.json", SEED101 / "results.json").stats
    assert list(got) == STATS
    for name in STATS:
        assert abs(got[name] - expected[name]) <= 1e-9, name


def test_reference_transcription_matches_the_official_api_on_the_fixture():
    """The reference is only a witness if it reproduces the official numbers itself."""
    expected = json.loads((SEED101 / "expected.json").read_text())
    gt = json.loads((SEED101 / "gt.json").read_text())
    res = json.loads((SEED101 / "results.json").read_text())
    stats, _ = reference_evaluate(gt, res)
    for name in STATS:
        assert abs(stats[name] - expected[name]) <= 1e-9, name


def _assert_same(gt, res):
    expected, ref_precision = reference_evaluate(gt, res)
    got = evaluate_ytvis(gt, res)
    for name in STATS:
        assert abs(got.stats[name] - expected[name]) <= 1e-12, (name, got.stats[name], expected[name])
    np.testing.assert_allclose(got.precision, ref_precision, rtol=0, atol=1e-12)
    return expected


@pytest.mark.parametrize("seed", range(120))
def test_random_sets_match_the_reference(seed):
    gt, res = random_case(seed)
    _assert_same(gt, res)


@pytest.mark.parametrize("seed", range(100, 106))
def test_random_sets_with_more_than_ten_predictions_per_unit(seed):
    gt, res = random_case(seed, many_dets=True)
    counts = defaultdict(int)
    for r in res:
        counts[r["video_id"], r["category_id"]] += 1
    assert max(counts.values()) > 10  # AR1/AR10 truncation is exercised
    _assert_same(gt, res)


def test_more_than_a_hundred_predictions_in_one_unit():
    rng = np.random.default_rng(7)
    h, w, length = 20, 24, 2
    gt_mask = _blob(rng, h, w)
    gt = {
        "videos": [{"id": 1, "height": h, "width": w, "length": length}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 1,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": [_encode(gt_mask)] * length,
                "areas": [float(gt_mask.sum())] * length,
            }
        ],
    }
    res = [
        {
            "video_id": 1,
            "category_id": 1,
            "score": float(rng.integers(0, 20)) / 20,
            "segmentations": [_encode(_perturb(rng, gt_mask)) for _ in range(length)],
        }
        for _ in range(130)
    ]
    _assert_same(gt, res)


def test_random_cases_cover_the_interesting_regimes():
    """Guard the generator: area ranges, crowds, id 0, ties and null frames all occur."""
    seen = defaultdict(int)
    for seed in range(40):
        gt, res = random_case(seed)
        stats, _ = reference_evaluate(gt, res)
        for name in ("APs", "APm", "APl"):
            seen[name] += stats[name] > -1
        seen["crowd"] += any(a["iscrowd"] for a in gt["annotations"])
        seen["id0"] += any(a["id"] == 0 for a in gt["annotations"])
        scores = [r["score"] for r in res]
        seen["score_ties"] += len(scores) != len(set(scores))
        seen["null"] += any(s is None for r in res for s in r["segmentations"])
    assert all(seen[k] >= 3 for k in ("APs", "APm", "APl", "crowd", "score_ties", "null")), dict(seen)
    assert seen["id0"] >= 1, dict(seen)


def _strip(cols: range, h: int = 10, w: int = 16) -> dict:
    mask = np.zeros((h, w), dtype=bool)
    mask[:, cols.start : cols.stop] = True
    return _encode(mask)


@pytest.mark.parametrize("g1_first", [True, False])
def test_an_exact_iou_tie_goes_to_the_ground_truth_listed_last(g1_first):
    """d1 ties exactly (80/120) with g1 and g2; d2 fits only g1 (1.0 vs 60/140).
    The official scan lets the later GT replace an equal best: with g2 last, d1 takes g2 and d2
    still finds g1 (AP50 = 1); with g1 last, d1 takes g1 and d2 is a false positive."""
    g1 = {
        "id": 1,
        "video_id": 1,
        "category_id": 1,
        "iscrowd": 0,
        "segmentations": [_strip(range(0, 10))],
        "areas": [100.0],
    }
    g2 = {
        "id": 2,
        "video_id": 1,
        "category_id": 1,
        "iscrowd": 0,
        "segmentations": [_strip(range(4, 14))],
        "areas": [100.0],
    }
    gt = {
        "videos": [{"id": 1, "height": 10, "width": 16, "length": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [g1, g2] if g1_first else [g2, g1],
    }
    res = [
        {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [_strip(range(2, 12))]},
        {"video_id": 1, "category_id": 1, "score": 0.8, "segmentations": [_strip(range(0, 10))]},
    ]
    stats = _assert_same(gt, res)
    if g1_first:
        assert stats["AP50"] == pytest.approx(1.0)
    else:
        # d1 TP (p=1, r=.5), d2 FP: recall .5 reached at precision 1 -> 51 of 101 points
        assert stats["AP50"] == pytest.approx(51 / 101)
