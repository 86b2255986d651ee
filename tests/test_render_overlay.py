"""Whole overlays: frames, rate and size kept; colours stable and equal to the PNG palette;
ground truth side by side; one-line errors that leave no output."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from _video_samples import BLOCK, index_image, read_index, write_frames, write_video
from PIL import Image
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.data.video_io import open_video
from vistr_core.errors import ResultsError, VideoError
from vistr_core.ops.masks import encode_masks
from vistr_core.render import OverlayStyle, OverlayWriter, palette_for_png, render_overlay
from vistr_core.render.draw import label_patch
from vistr_core.render.overlay import render_ground_truth

W, H, N = 64, 48, 20
OPAQUE = OverlayStyle(alpha=1.0, contours=False, labels=False, score_thr=0.0)
PLAIN = OverlayStyle(alpha=0.5, contours=False, labels=False, score_thr=0.0)


def track_masks(count: int, track: int, height: int = H, width: int = W) -> np.ndarray:
    """``uint8 [count, H, W]``: a disc moving right, below the index blocks; absent in frame 4 for track 2."""
    masks = np.zeros((count, height, width), np.uint8)
    for t in range(count):
        if not (track == 2 and t == 4):
            cv2.circle(masks[t], (8 + 10 * (track - 1) + t % 20, BLOCK + 14 + 6 * (track - 1)), 6, 1, -1)
    return masks


def make_results(count: int, tracks=(1, 2, 3), *, size=(H, W), video_id: int = 1) -> list[dict]:
    return [
        {
            "video_id": video_id,
            "category_id": track,
            "score": 0.6 + 0.1 * k,
            "track_id": track,
            "segmentations": [
                None if not m.any() else r
                for m, r in zip(
                    track_masks(count, track, *size),
                    encode_masks(track_masks(count, track, *size)),
                    strict=True,
                )
            ],
        }
        for k, track in enumerate(tracks)
    ]


def decode_all(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], float(stream.average_rate)


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4", N, size=(W, H), rate=25)


@pytest.fixture
def frames_dir(tmp_path) -> Path:
    return write_frames(tmp_path / "frames", [f"{k}.png" for k in range(N)], size=(W, H))  # lossless source


def test_video_overlay_keeps_count_rate_size_and_order(tmp_path, clip):
    summary = render_overlay(make_results(N), clip, tmp_path / "out.mp4", style=PLAIN)
    images, rate = decode_all(tmp_path / "out.mp4")
    assert (summary.frames, summary.width, summary.height, summary.fps) == (N, W, H, 25.0)
    assert len(images) == N and rate == 25.0 and images[0].shape == (H, W, 3)
    assert [read_index(im) for im in images] == list(range(N))  # order kept, masks below the index row


def test_frame_folder_overlay_outside_pixels_unchanged_and_colours_match_png_palette(tmp_path, frames_dir):
    results = make_results(N)
    out = tmp_path / "png"
    render_overlay(results, frames_dir, out, style=OPAQUE)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{k:05d}.png" for k in range(N)]
    palette = np.array(palette_for_png()).reshape(256, 3)
    masks = {t: track_masks(N, t).astype(bool) for t in (1, 2, 3)}
    for k in range(N):
        image = np.asarray(Image.open(out / f"{k:05d}.png").convert("RGB"))
        source = index_image(k, H, W)
        union = masks[1][k] | masks[2][k] | masks[3][k]
        assert np.array_equal(image[~union], source[~union])
        for t in (1, 2, 3):  # higher scores are drawn on top: track 3 over 2 over 1
            own = masks[t][k] & ~np.logical_or.reduce([masks[u][k] for u in (1, 2, 3) if u > t])
            assert (image[own] == palette[t]).all(), (k, t)
    # Partly transparent: outside unchanged too, with labels off and contours off.
    render_overlay(results, frames_dir, tmp_path / "half", style=PLAIN)
    for k in (0, 4, 19):
        image = np.asarray(Image.open(tmp_path / "half" / f"{k:05d}.png").convert("RGB"))
        union = masks[1][k] | masks[2][k] | masks[3][k]
        assert np.array_equal(image[~union], index_image(k, H, W)[~union])


def test_meta_frame_indices_map_subsampled_results_to_source_frames(tmp_path, clip):
    # Results made with --start 3 --stride 2: 8 results frames = source frames 3, 5, ..., 17.
    indices = list(range(3, 19, 2))
    summary = render_overlay(
        make_results(len(indices)), clip, tmp_path / "out.mp4", style=PLAIN, frame_indices=indices
    )
    images, rate = decode_all(tmp_path / "out.mp4")
    assert [read_index(im) for im in images] == indices and summary.frames == 8
    assert rate == pytest.approx(12.5)  # the source's 25 fps over the stride: real time kept


def test_irregular_frame_indices(tmp_path, clip):
    indices = [0, 1, 5, 6, 13]
    render_overlay(make_results(5), clip, tmp_path / "out.mp4", style=PLAIN, frame_indices=indices)
    assert [read_index(im) for im in decode_all(tmp_path / "out.mp4")[0]] == indices


def test_start_end_select_source_frames(tmp_path, clip):
    render_overlay(make_results(N), clip, tmp_path / "out.mp4", style=PLAIN, start=5, end=9)
    assert [read_index(im) for im in decode_all(tmp_path / "out.mp4")[0]] == [5, 6, 7, 8]


def test_score_threshold_hides_low_tracks(tmp_path, frames_dir):
    results = make_results(N)  # scores 0.6, 0.7, 0.8
    summary = render_overlay(
        results,
        frames_dir,
        tmp_path / "png",
        style=OverlayStyle(alpha=1.0, score_thr=0.75, labels=False, contours=False),
    )
    assert summary.tracks == 1 and summary.hidden == 2
    image = np.asarray(Image.open(tmp_path / "png" / "00000.png").convert("RGB"))
    only_track1 = track_masks(N, 1)[0].astype(bool) & ~track_masks(N, 3)[0].astype(bool)
    assert np.array_equal(image[only_track1], index_image(0, H, W)[only_track1])


def test_legend_and_gif_output(tmp_path, clip):
    summary = render_overlay(
        make_results(N),
        clip,
        tmp_path / "out.gif",
        style=OverlayStyle(legend=True, score_thr=0.0),
        categories={1: "cat", 2: "dog", 3: "person"},
    )
    with Image.open(tmp_path / "out.gif") as gif:
        assert gif.n_frames == N and gif.size == (summary.width, H) and summary.width > W


def test_streaming_writer_matches_render(tmp_path, frames_dir):
    results = make_results(N)
    render_overlay(results, frames_dir, tmp_path / "a", style=PLAIN)
    with OverlayWriter(tmp_path / "b", width=W, height=H, fps=30.0, style=PLAIN) as writer:
        for k in range(N):
            masks = np.stack([track_masks(N, t)[k] for t in (1, 2, 3)]).astype(bool)
            writer.write(index_image(k, H, W), masks, [1, 2, 3], index=k)
    for k in range(N):
        a = np.asarray(Image.open(tmp_path / "a" / f"{k:05d}.png"))
        b = np.asarray(Image.open(tmp_path / "b" / f"{k:05d}.png"))
        assert np.array_equal(a, b)


def test_size_and_frame_count_mismatches_fail_before_writing(tmp_path, clip):
    with pytest.raises(ResultsError, match=r"masks are 32x24 but video .* is 64x48; pass the --video"):
        render_overlay(make_results(N, size=(24, 32)), clip, tmp_path / "out.mp4")
    with pytest.raises(ResultsError, match=r"has 12 frames per track but .* has 20; pass the --video"):
        render_overlay(make_results(12), clip, tmp_path / "out.mp4")
    with pytest.raises(ResultsError, match="holds 2 videos"):
        render_overlay(make_results(N) + make_results(N, video_id=2), clip, tmp_path / "out.mp4")
    with pytest.raises(VideoError, match="no such video"):
        render_overlay(make_results(N), tmp_path / "missing.mp4", tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def write_gt(root: Path, count: int = 6) -> Path:
    """A one-video YouTube-VIS file with frames at root/JPEGImages/v7/NNNNN.png (lossless)."""
    files = [f"v7/{k:05d}.png" for k in range(count)]
    write_frames(root / "JPEGImages" / "v7", [Path(f).name for f in files], size=(W, H))
    annotations = [
        {
            "id": 100 + t,
            "video_id": 7,
            "category_id": t,
            "iscrowd": 0,
            "segmentations": [
                r if m.any() else None
                for m, r in zip(track_masks(count, t), encode_masks(track_masks(count, t)), strict=True)
            ],
        }
        for t in (1, 2)
    ]
    data = {
        "videos": [{"id": 7, "width": W, "height": H, "length": count, "file_names": files}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "fox"}],
        "annotations": annotations,
    }
    (root / "gt.json").write_text(json.dumps(data))
    return root / "gt.json"


def test_ground_truth_alone_and_side_by_side(tmp_path):
    gt = write_gt(tmp_path / "data")
    root = tmp_path / "data" / "JPEGImages"
    summary = render_ground_truth(gt, tmp_path / "gt", frames_root=root, style=OPAQUE)
    assert (summary.frames, summary.width, summary.fps) == (6, W, 6.0)
    first = np.asarray(Image.open(tmp_path / "gt" / "00000.png").convert("RGB"))
    disc = track_masks(6, 1)[0].astype(bool) & ~track_masks(6, 2)[0].astype(bool)
    assert (first[disc] == palette_for_png()[3:6]).all()
    results = make_results(6, tracks=(1,), video_id=7)  # where ground-truth track 1 is, as track 9
    results[0]["track_id"] = 9
    summary = render_ground_truth(gt, tmp_path / "both", frames_root=root, results=results, style=OPAQUE)
    both = np.asarray(Image.open(tmp_path / "both" / "00000.png").convert("RGB"))
    assert summary.width == 2 * W and both.shape == (H, 2 * W, 3)
    left, right = both[:, :W], both[:, W:]
    clear_of_titles = np.zeros((H, W), bool)  # outside the caption strip at the bottom of each pane
    clear_of_titles[: H - label_patch("ground truth", (40, 40, 40), OPAQUE.text_scale(H, W)).shape[0]] = True
    predicted = track_masks(6, 1)[0].astype(bool)
    assert (disc & clear_of_titles).sum() > 50 and (predicted & clear_of_titles).sum() > 50
    assert (right[predicted & clear_of_titles] == palette_for_png()[27:30]).all()  # predictions on the right
    assert np.array_equal(
        right[~predicted & clear_of_titles], index_image(0, H, W)[~predicted & clear_of_titles]
    )
    assert (left[disc & clear_of_titles] == palette_for_png()[3:6]).all()  # ground truth on the left


# -- the command -----------------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(app, ["render", *map(str, args)])


def one_line_error(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_cli_uses_meta_json_source(tmp_path, clip):
    folder = tmp_path / "out" / "clip"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(make_results(N)))
    meta = {
        "source": str(clip),
        "fps": 25.0,
        "frame_indices": list(range(N)),
        "categories": {"1": "cat", "2": "dog", "3": "fox"},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    result = run(folder / "results.json", "-o", tmp_path / "overlay.mp4", "--legend", "--boxes")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and f"{N} frames" in result.output and "3 tracks," in result.output
    hiding = run(folder / "results.json", "-o", tmp_path / "top.gif", "--score-thr", "0.75")
    assert hiding.exit_code == 0 and "1 track (2 below --score-thr hidden)" in hiding.output
    images, rate = decode_all(tmp_path / "overlay.mp4")
    assert len(images) == N and rate == 25.0
    by_folder = run(folder, "-o", tmp_path / "from_folder.gif")  # the segment output folder works too
    assert by_folder.exit_code == 0, by_folder.output
    existing = run(folder / "results.json", "-o", tmp_path / "overlay.mp4")
    assert "--force" in one_line_error(existing)
    assert run(folder / "results.json", "-o", tmp_path / "overlay.mp4", "--force").exit_code == 0


def test_cli_errors_are_one_line_and_leave_no_output(tmp_path, clip):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(make_results(N)))
    out = tmp_path / "o.mp4"
    assert "pass --video" in one_line_error(run(results, "-o", out))  # no meta.json, no --video
    assert "does not exist" in one_line_error(run(results, "--video", tmp_path / "nope.mp4", "-o", out))
    small = tmp_path / "small.json"
    small.write_text(json.dumps(make_results(N, size=(24, 32))))
    assert "32x24" in one_line_error(run(small, "--video", clip, "-o", out))
    short = tmp_path / "short.json"
    short.write_text(json.dumps(make_results(5)))
    assert "5 frames per track" in one_line_error(run(short, "--video", clip, "-o", out))
    (tmp_path / "meta.json").write_text(json.dumps({"source": str(tmp_path / "moved.mp4")}))
    assert "pass --video" in one_line_error(run(results, "-o", out))
    (tmp_path / "bad.json").write_text("[{")
    assert "not valid JSON" in one_line_error(run(tmp_path / "bad.json", "--video", clip, "-o", out))
    assert "nothing to render" in one_line_error(run("-o", out))
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_ground_truth(tmp_path):
    gt = write_gt(tmp_path / "data")
    result = run("--gt", gt, "--frames-root", tmp_path / "data" / "JPEGImages", "-o", tmp_path / "gt.mp4")
    assert result.exit_code == 0, result.output
    images, rate = decode_all(tmp_path / "gt.mp4")
    assert len(images) == 6 and rate == 6.0
    assert "--frames-root" in one_line_error(
        run("--gt", gt, "--frames-root", tmp_path, "-o", tmp_path / "x.mp4")
    )
    assert "--video-id" in one_line_error(run("--gt", gt, "--video-id", 99, "-o", tmp_path / "x.mp4"))
    assert not (tmp_path / "x.mp4").exists()


def test_open_video_source_as_given_by_segment(tmp_path, clip):
    # `vistr segment --start 2 --stride 3` hands over its VideoSource: results frame k = its k-th frame.
    with open_video(clip, start=2, stride=3) as video:
        summary = render_overlay(
            make_results(video.frame_count), video, tmp_path / "out.mp4", style={"labels": False}
        )
        expected = list(video.frame_indices)
    images, rate = decode_all(tmp_path / "out.mp4")
    assert [read_index(im) for im in images] == expected == [2, 5, 8, 11, 14, 17]
    assert summary.frames == 6 and rate == pytest.approx(25 / 3)


def test_empty_results_render_the_plain_video(tmp_path, frames_dir):
    summary = render_overlay([], frames_dir, tmp_path / "png", style=OPAQUE)
    assert summary.frames == N and summary.tracks == 0
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "png" / "00007.png").convert("RGB")), index_image(7, H, W)
    )


def test_failure_midway_leaves_no_output(tmp_path, frames_dir):
    (frames_dir / "12.png").write_bytes(b"not an image")
    with pytest.raises(VideoError, match=r"12\.png"):
        render_overlay(make_results(N), frames_dir, tmp_path / "out.mp4", style=PLAIN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_side_by_side_with_legends_of_different_widths(tmp_path):
    # Ground-truth legend rows have no score, so they are narrower than the predictions' rows.
    gt = write_gt(tmp_path / "data")
    results = make_results(6, tracks=(1, 2, 3), video_id=7)
    summary = render_ground_truth(
        gt, tmp_path / "both.mp4", frames_root=tmp_path / "data" / "JPEGImages", results=results,
        style=OverlayStyle(legend=True, score_thr=0.0),
    )  # fmt: skip
    images, _ = decode_all(tmp_path / "both.mp4")
    assert len(images) == 6 and summary.width % 2 == 0 and summary.width > 2 * W
    assert images[0].shape[1] == summary.width
