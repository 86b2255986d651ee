"""Reading videos and frame folders: order, ranges, timestamps, sizes, errors, input expansion."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from _video_samples import index_image, read_index, write_frames, write_video

from vistr_core.data.prefetch import prefetch
from vistr_core.data.video_io import Frame, iter_videos, natural_key, open_video
from vistr_core.errors import ConfigError, VideoError


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", 40)


def test_natural_key_orders_numbers_as_numbers_and_ignores_case():
    names = ["10.jpg", "2.jpg", "frame_10.png", "Frame_9.png", "1.jpg", "frame_009.png", "b.jpg", "A.jpg"]
    assert sorted(names, key=natural_key) == [
        "1.jpg", "2.jpg", "10.jpg", "A.jpg", "b.jpg", "Frame_9.png", "frame_009.png", "frame_10.png",
    ]  # fmt: skip


def test_file_frames_in_order_with_metadata(mp4):
    with open_video(mp4) as video:
        assert (video.kind, video.width, video.height, video.fps) == ("file", 48, 32, 25.0)
        assert video.frame_count == 40 and video.frame_names is None
        frames = list(video)
    assert [read_index(f.image) for f in frames] == list(range(40))
    assert [f.index for f in frames] == list(range(40))
    assert all(
        isinstance(f, Frame) and f.image.shape == (32, 48, 3) and f.image.dtype == np.uint8 for f in frames
    )
    assert [f.timestamp for f in frames] == pytest.approx([i / 25 for i in range(40)])
    assert frames[7].name == "00007"


def test_file_start_end_stride(mp4):
    with open_video(mp4, start=5, end=30, stride=4) as video:
        assert video.frame_count == 7 and list(video.frame_indices) == [5, 9, 13, 17, 21, 25, 29]
        frames = list(video)
    assert [f.index for f in frames] == [5, 9, 13, 17, 21, 25, 29]
    assert [read_index(f.image) for f in frames] == [5, 9, 13, 17, 21, 25, 29]
    assert frames[1].timestamp == pytest.approx(9 / 25)
    with open_video(mp4, start=38, end=100) as video:
        assert video.frame_count == 2 and [f.index for f in video] == [38, 39]


def test_frame_count_without_container_metadata(tmp_path):
    # Matroska declares no frame count: it is counted by demuxing, without decoding.
    path = write_video(tmp_path / "clip.mkv", 17)
    with open_video(path, stride=2) as video:
        assert video._declared_frames == 0
        assert video.source_frame_count == 17 and video.frame_count == 9
        assert len(list(video)) == 9


@pytest.mark.parametrize(
    ("rotation", "undo"),
    [(-90, cv2.ROTATE_90_COUNTERCLOCKWISE), (90, cv2.ROTATE_90_CLOCKWISE), (180, cv2.ROTATE_180)],
)
def test_display_rotation_is_applied(tmp_path, rotation, undo):
    # A phone video is stored sideways with a display matrix: frames come out upright, as players show them.
    path = write_video(tmp_path / "phone.mp4", 5, rotation=rotation)
    with open_video(path) as video:
        frames = list(video)
        upright = (32, 48) if rotation == 180 else (48, 32)
        assert (video.height, video.width) == upright and frames[0].image.shape[:2] == upright
    assert [read_index(cv2.rotate(f.image, undo)) for f in frames] == list(range(5))


def test_variable_frame_rate_timestamps_come_from_pts(tmp_path):
    pts = [0, 40, 80, 200, 240, 520, 560, 600, 1000, 1040]
    path = write_video(tmp_path / "vfr.mkv", len(pts), pts_ms=pts)
    with open_video(path) as video:
        frames = list(video)
    assert [f.timestamp for f in frames] == pytest.approx([p / 1000 for p in pts])
    assert [read_index(f.image) for f in frames] == list(range(len(pts)))


def test_frame_folder_natural_order_and_range(tmp_path):
    names = [f"{k}.jpg" for k in range(12)]  # unpadded: a lexicographic sort puts 10 before 2
    folder = write_frames(tmp_path / "frames", names)
    (folder / "notes.txt").write_text("not a frame")
    with open_video(folder, fps=10) as video:
        assert (video.kind, video.width, video.height, video.fps, video.frame_count) == (
            "frames",
            48,
            32,
            10.0,
            12,
        )
        assert video.frame_names == names
        frames = list(video)
    assert [read_index(f.image) for f in frames] == list(range(12))
    assert [f.name for f in frames] == names
    assert frames[3].timestamp == pytest.approx(0.3)
    with open_video(folder, start=2, end=11, stride=3) as video:
        assert video.fps == 30.0 and video.frame_names == ["2.jpg", "5.jpg", "8.jpg"]
        assert [(f.index, read_index(f.image)) for f in video] == [(2, 2), (5, 5), (8, 8)]


def test_frame_folder_mixed_names_and_extensions(tmp_path):
    names = ["frame_9.PNG", "frame_10.png", "Frame_11.bmp", "frame_100.jpeg"]
    folder = write_frames(tmp_path / "f", names)
    with open_video(folder) as video:
        assert video.frame_names == names
        assert [read_index(f.image) for f in video] == [0, 1, 2, 3]


def test_frames_of_different_sizes_name_the_frame(tmp_path):
    folder = write_frames(tmp_path / "f", ["0.png", "1.png"])
    write_frames(tmp_path / "g", ["2.png"], size=(40, 32))
    (tmp_path / "g" / "2.png").rename(folder / "2.png")
    with open_video(folder) as video, pytest.raises(VideoError, match=r"2\.png is 40x32.*48x32"):
        list(video)


def test_video_whose_frame_size_changes(tmp_path):
    # Two raw H.264 streams back to back: the decoder switches resolution at frame 2.
    pytest.importorskip("av").codec.Codec("libx264", "w")
    first = write_video(tmp_path / "a.h264", 2, size=(48, 32), codec="libx264")
    second = write_video(tmp_path / "b.h264", 2, size=(32, 32), codec="libx264")
    path = tmp_path / "v.h264"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    with open_video(path) as video, pytest.raises(VideoError, match="frame 2 is 32x32"):
        list(video)


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not a video at all" * 50, b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8],
    ids=["empty", "text", "truncated-mp4"],
)
def test_non_video_files_raise_at_open(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=r"cannot decode .*bad\.mp4.*is it a video\?"):
        open_video(path)


def test_corrupt_image_in_folder_names_the_frame(tmp_path):
    folder = write_frames(tmp_path / "f", ["0.jpg", "1.jpg"])
    (folder / "2.jpg").write_bytes(b"garbage")
    with open_video(folder) as video, pytest.raises(VideoError, match=r"2\.jpg"):
        list(video)


def test_missing_sources_and_bad_ranges(tmp_path, mp4):
    with pytest.raises(VideoError, match="no such video"):
        open_video(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no frame images"):
        open_video(tmp_path / "empty")
    with pytest.raises(VideoError, match="no frames in the range"):
        open_video(mp4, start=40)
    with pytest.raises(ConfigError):
        open_video(mp4, stride=0)


def test_close_stops_iteration(mp4):
    video = open_video(mp4)
    frames = iter(video)
    next(frames)
    video.close()
    assert list(frames) == []


def test_iter_videos_expands_files_folders_and_globs(tmp_path):
    root = tmp_path / "data"
    write_video(root / "b" / "clip10.mp4", 2)
    write_video(root / "b" / "clip2.MOV", 2)
    write_frames(root / "frames" / "seq_1", ["1.jpg", "2.jpg"])
    write_frames(root / "frames" / "seq_02", ["1.jpg"])
    (root / "readme.txt").write_text("x")
    write_frames(root / ".hidden", ["1.jpg"])
    expected = [
        root / "b" / "clip2.MOV", root / "b" / "clip10.mp4",
        root / "frames" / "seq_1", root / "frames" / "seq_02",
    ]  # fmt: skip
    assert iter_videos([root]) == expected
    assert iter_videos([root / "b"], recursive=False) == expected[:2]
    assert iter_videos([root / "frames"], recursive=False) == expected[2:]
    assert iter_videos([str(root / "b" / "*.mp4"), root / "b" / "clip10.mp4"]) == [root / "b" / "clip10.mp4"]
    assert iter_videos([str(root / "frames" / "seq_1" / "*.jpg")]) == [root / "frames" / "seq_1"]
    assert iter_videos([root / "frames" / "seq_1"]) == [root / "frames" / "seq_1"]
    with pytest.raises(VideoError, match="no such file"):
        iter_videos([tmp_path / "missing.mp4"])
    with pytest.raises(VideoError, match="matches no video"):
        iter_videos([str(tmp_path / "*.avi")])


def test_image_files_of_one_folder_are_that_frame_folder(tmp_path):
    seq = tmp_path / "seq"
    write_frames(seq, [f"{t}.jpg" for t in range(5)])
    clip = write_video(tmp_path / "clip.mp4", 2)
    expanded = sorted(seq.iterdir())  # what the shell makes of an unquoted seq/*.jpg
    assert iter_videos(expanded) == [seq]
    assert iter_videos([clip, *expanded]) == [clip, seq]
    assert iter_videos([seq / "3.jpg"]) == [seq / "3.jpg"]  # one image alone stays one image
    with pytest.raises(VideoError) as err:
        iter_videos(expanded[:3])
    assert str(err.value) == (
        f"3 of the 5 frames in {seq} were given as separate files (a glob the shell expanded?); "
        "a frame folder is one video: pass the folder (--start/--end/--stride choose frames), or quote the glob"
    )


def test_prefetch_keeps_order_and_reraises():
    assert list(prefetch(range(100), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise VideoError("boom")

    got = []
    with pytest.raises(VideoError, match="boom"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_its_producer_when_closed():
    produced = []

    def slow():
        for i in range(1000):
            produced.append(i)
            yield i

    stream = prefetch(slow(), depth=2)
    assert next(stream) == 0
    stream.close()
    count = len(produced)
    time.sleep(0.05)
    assert len(produced) == count <= 4
    assert not any(t.name == "vistr-prefetch" and t.is_alive() for t in threading.enumerate())


def test_index_image_helper_round_trips():
    assert all(read_index(index_image(k)) == k for k in range(64))
