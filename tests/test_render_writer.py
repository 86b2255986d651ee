"""Output writers: frame count, rate and size kept; atomic; codec fallback; refusing to overwrite."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from vistr_core.errors import ConfigError, OutputExistsError
from vistr_core.render import open_writer, output_kind, track_color, video_encoder
from vistr_core.render import writer as writer_module


def frames(count: int, height: int = 32, width: int = 48) -> list[np.ndarray]:
    return [np.full((height, width, 3), 8 * k, np.uint8) for k in range(count)]


def probe(path) -> tuple[float, int, int, int, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = sum(1 for _ in container.decode(stream))
        return float(stream.average_rate), decoded, stream.width, stream.height, stream.codec_context.name


def test_output_kind_by_suffix(tmp_path):
    assert output_kind(tmp_path / "a.mp4") == "video" and output_kind(tmp_path / "a.MKV") == "video"
    assert output_kind(tmp_path / "a.gif") == "gif"
    assert output_kind(tmp_path / "frames") == "frames" and output_kind(tmp_path) == "frames"
    with pytest.raises(ConfigError, match="unknown output type"):
        output_kind(tmp_path / "a.jpg")


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001, 12.5])
def test_video_keeps_rate_count_and_size(tmp_path, fps):
    path = tmp_path / "out.mp4"
    with open_writer(path, width=48, height=32, fps=fps) as writer:
        for k, image in enumerate(frames(17)):
            writer.write(image, k)
    rate, count, width, height, codec = probe(path)
    assert rate == pytest.approx(fps, rel=1e-6) and count == 17 and (width, height) == (48, 32)
    assert codec in {"h264", "mpeg4"} and writer.codec == video_encoder()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary left behind


def test_video_colours_survive_encoding(tmp_path):
    colours = [track_color(k) for k in (1, 2, 3, 4, 17)]
    with open_writer(tmp_path / "c.mp4", width=64, height=48, fps=10) as writer:
        for colour in colours:
            writer.write(np.full((48, 64, 3), colour, np.uint8))
    with av.open(str(tmp_path / "c.mp4")) as container:
        decoded = [
            f.to_ndarray(format="rgb24")[8:40, 8:56].reshape(-1, 3).mean(0) for f in container.decode(video=0)
        ]
    assert np.abs(np.array(decoded) - np.array(colours)).max() <= 6


def test_odd_sizes_are_padded_to_even(tmp_path):
    with open_writer(tmp_path / "odd.mp4", width=47, height=31, fps=10) as writer:
        for image in frames(3, 31, 47):
            writer.write(image)
    assert probe(tmp_path / "odd.mp4")[2:4] == (48, 32)


def test_mpeg4_fallback_when_no_h264_encoder_opens(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "H264_ENCODERS", ("no_such_h264_encoder",))
    writer_module.video_encoder.cache_clear()
    try:
        assert video_encoder() == "mpeg4"
        with open_writer(tmp_path / "out.mp4", width=48, height=32, fps=25) as writer:
            for image in frames(5):
                writer.write(image)
        assert probe(tmp_path / "out.mp4")[1:] == (5, 48, 32, "mpeg4")
    finally:
        writer_module.video_encoder.cache_clear()


def test_gif_frames_and_delays(tmp_path):
    path = tmp_path / "out.gif"
    with open_writer(path, width=48, height=32, fps=30) as writer:
        for image in frames(9):
            writer.write(image)
    with Image.open(path) as gif:
        assert gif.n_frames == 9 and gif.size == (48, 32)
        delays = []
        for k in range(9):
            gif.seek(k)
            delays.append(gif.info["duration"])
            assert abs(int(np.asarray(gif.convert("RGB"))[0, 0, 0]) - 8 * k) <= 2
    assert sum(delays) == 300 and set(delays) <= {30, 40}  # 9 frames at 30 fps = 0.3 s


def test_png_sequence_named_by_frame_index(tmp_path):
    path = tmp_path / "frames"
    with open_writer(path, width=48, height=32, fps=30) as writer:
        for k, image in zip([3, 5, 7], frames(3), strict=True):
            writer.write(image, k)
    assert sorted(p.name for p in path.iterdir()) == ["00003.png", "00005.png", "00007.png"]
    assert np.array_equal(np.asarray(Image.open(path / "00005.png")), frames(3)[1])


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames"])
def test_error_leaves_nothing_behind(tmp_path, name):
    with (
        pytest.raises(RuntimeError, match="boom"),
        open_writer(tmp_path / name, width=48, height=32, fps=30) as writer,
    ):
        writer.write(frames(1)[0])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_refuses_existing_output_unless_forced(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"user data")
    with pytest.raises(OutputExistsError, match="--force"):
        open_writer(path, width=48, height=32, fps=30)
    assert path.read_bytes() == b"user data"
    with open_writer(path, width=48, height=32, fps=30, force=True) as writer:
        writer.write(frames(1)[0])
    assert probe(path)[1] == 1


def test_force_replaces_only_a_previous_png_sequence(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()  # an empty folder made beforehand is fine without --force
    with open_writer(folder, width=48, height=32, fps=30) as writer:
        writer.write(frames(1)[0], 4)
    with open_writer(folder, width=48, height=32, fps=30, force=True) as writer:
        writer.write(frames(1)[0], 9)
    assert [p.name for p in folder.iterdir()] == ["00009.png"]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="other than PNG"):
        open_writer(folder, width=48, height=32, fps=30, force=True)
    assert (folder / "notes.txt").read_text() == "mine"


def test_wrong_frame_size_is_rejected(tmp_path):
    writer = open_writer(tmp_path / "out.mp4", width=48, height=32, fps=30)
    with pytest.raises(ValueError, match="expected uint8"):
        writer.write(np.zeros((30, 48, 3), np.uint8))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
