"""Writing rendered frames: an H.264 video, a GIF or a folder of PNGs, atomically.

:func:`open_writer` picks the format from the output path (``.mp4/.m4v/.mov/.mkv/.avi`` → video,
``.gif`` → GIF, a folder or a name without suffix → PNG sequence). Frames go to a temporary sibling
that is moved onto the output only by :meth:`FrameWriter.commit`; :meth:`FrameWriter.abort` (or
an exception inside ``with``) removes it, so no half-written output is ever left behind.
Encoding runs on a background thread so it overlaps drawing the next frame.

Video uses H.264 (the first of libx264 / h264 / libopenh264 that actually opens, probed once)
and falls back to MPEG-4 Part 2 where none does (pip builds of some libraries lack x264).
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar

import av
import cv2
import numpy as np
from PIL import GifImagePlugin, Image

from ..atomic import refuse_overwrite
from ..errors import ConfigError, OutputExistsError

VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
H264_ENCODERS = ("libx264", "h264", "libopenh264")
FALLBACK_ENCODER = "mpeg4"
OutputKind = Literal["video", "gif", "frames"]


def output_kind(path: str | os.PathLike[str]) -> OutputKind:
    """What :func:`open_writer` writes at ``path``: a folder or suffix-less name means PNG frames."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or not suffix:
        return "frames"
    if suffix == ".gif":
        return "gif"
    if suffix in VIDEO_FORMATS:
        return "video"
    raise ConfigError(
        f"cannot write {p}: unknown output type {suffix!r}; use a video ({', '.join(VIDEO_FORMATS)}), "
        ".gif, or a folder for PNG frames"
    )


def _encoder_opens(name: str) -> bool:
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        frame = av.VideoFrame(64, 64, "yuv420p")
        frame.pts = 0
        ctx.encode(frame)
        ctx.encode(None)
        return True
    except (av.FFmpegError, ValueError, OSError):
        return False


@cache
def video_encoder() -> str:
    """The encoder videos are written with: the first working H.264 encoder, else ``mpeg4``."""
    for name in H264_ENCODERS:
        if _encoder_opens(name):
            return name
    return FALLBACK_ENCODER


_W = TypeVar("_W", bound="CommitOnSuccess")


class CommitOnSuccess:
    """A context manager for outputs written under a temporary name: a clean exit commits (moves
    the output into place), an exception aborts (removes it), so no partial output is left."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class FrameWriter(CommitOnSuccess):
    """Base of the three writers: a bounded queue drained by one encoding thread.

    ``write(image, index)`` hands a frame over (the writer keeps a reference: do not modify the
    array afterwards); an encoding error surfaces at the next ``write`` or at ``commit``.
    """

    kind: OutputKind
    codec: str

    def __init__(self, path: Path, *, width: int, height: int, fps: float, queue_depth: int = 8) -> None:
        self.path, self.width, self.height, self.fps = path, width, height, fps
        self.frames_written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_depth)
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._drain, name=f"vistr-{self.kind}-writer", daemon=True)
        self._thread.start()

    # Subclasses implement these three; they run on the encoding thread (except _discard).
    def _encode(self, image: np.ndarray, index: int) -> None:
        raise NotImplementedError

    def _finalize(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._encode(*item)
                except BaseException as err:  # noqa: BLE001 - re-raised on the caller's thread
                    self._error = err

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self.abort()
            raise error

    def write(self, image: np.ndarray, index: int | None = None) -> None:
        """Queue ``uint8 [height, width, 3]`` RGB; ``index`` names PNG files (default: a counter)."""
        if self._finished:
            raise RuntimeError(f"writer for {self.path} is already closed")
        self._raise_pending()
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 [{self.height}, {self.width}, 3], got {image.dtype} {image.shape}"
            )
        self._queue.put((image, self.frames_written if index is None else index))
        self.frames_written += 1

    def _stop_thread(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def commit(self) -> Path:
        """Finish encoding and move the output into place; returns its path."""
        if self._finished:
            return self.path
        self._stop_thread()
        self._raise_pending()
        try:
            self._finalize()
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Stop and delete everything written so far; the output path is left as it was."""
        if self._finished:
            return
        self._finished = True
        if self._thread.is_alive():
            self._stop_thread()
        self._discard()


def _temp_sibling(path: Path, suffix: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{suffix}", dir=path.parent)
    os.close(fd)
    return Path(tmp)


class VideoWriter(FrameWriter):
    """H.264 (libx264 ``preset``/``crf``; MPEG-4 fallback) in an MP4/MOV/MKV/AVI container at a constant ``fps``.

    yuv420p needs even sizes: an odd width or height is padded by one replicated pixel.
    """

    kind = "video"

    def __init__(
        self, path: Path, *, width: int, height: int, fps: float, crf: int = 23, preset: str = "superfast"
    ) -> None:
        self.codec = video_encoder()
        self._tmp = _temp_sibling(path, path.suffix)
        self._container = av.open(str(self._tmp), "w", format=VIDEO_FORMATS[path.suffix.lower()])
        rate = Fraction(fps).limit_denominator(1001)
        stream = self._container.add_stream(self.codec, rate=rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        # Tag what _encode produces (BT.601 matrix, limited range) so players do not assume BT.709 for HD.
        stream.codec_context.colorspace, stream.codec_context.color_range = 5, 1  # AVCOL_SPC_BT470BG, MPEG
        if self.codec == "libx264":
            # superfast: about twice the speed of veryfast at 720p for about twice the bitrate
            # (~2.5 Mbit/s at crf 23): overlays are written faster than most models segment.
            stream.options = {"preset": preset, "crf": str(crf)}
        elif self.codec == FALLBACK_ENCODER:
            stream.bit_rate = int(0.15 * stream.width * stream.height * float(rate))  # ~4 Mbit/s at 720p30
        self._stream = stream
        super().__init__(path, width=width, height=height, fps=float(rate))

    def _encode(self, image: np.ndarray, index: int) -> None:
        if image.shape[:2] != (self._stream.height, self._stream.width):
            image = cv2.copyMakeBorder(
                image, 0, self._stream.height - image.shape[0], 0, self._stream.width - image.shape[1],
                cv2.BORDER_REPLICATE,
            )  # fmt: skip
        # OpenCV's BT.601 limited-range conversion matches swscale's default within 2 levels and is
        # ~5x faster than letting the encoder convert rgb24 (the single largest cost at 720p).
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _finalize(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._tmp, self.path)

    def _discard(self) -> None:
        try:
            self._container.close()
        except (av.FFmpegError, ValueError, OSError):
            pass  # a failed encoder may refuse to write the trailer; the file is deleted anyway
        self._tmp.unlink(missing_ok=True)


class GifWriter(FrameWriter):
    """An animated GIF, streamed frame by frame; each frame gets its own 256-colour palette.

    GIF delays are whole centiseconds: they are rounded cumulatively so the total duration stays
    right (30 fps alternates 3 and 4 cs).
    """

    kind = "gif"
    codec = "gif"

    def __init__(self, path: Path, *, width: int, height: int, fps: float) -> None:
        self._tmp = _temp_sibling(path, ".gif")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed by _finalize/_discard
        self._count = 0  # frames emitted, counted on the encoding thread
        super().__init__(path, width=width, height=height, fps=fps)

    def _delay_ms(self, k: int) -> int:
        return 10 * (round((k + 1) * 100 / self.fps) - round(k * 100 / self.fps))

    def _emit(self, image: Image.Image, k: int) -> None:
        if k == 0:
            header, _ = GifImagePlugin.getheader(image, info={"loop": 0, "duration": 1})
            self._file.write(b"".join(header))
        for chunk in GifImagePlugin.getdata(image, duration=self._delay_ms(k), include_color_table=True):
            self._file.write(chunk)

    def _encode(self, image: np.ndarray, index: int) -> None:
        quantized = Image.fromarray(image).quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        self._emit(quantized, self._count)
        self._count += 1

    def _finalize(self) -> None:
        self._file.write(b";")
        self._file.close()
        os.replace(self._tmp, self.path)

    def _discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class PngSequenceWriter(FrameWriter):
    """A folder of ``NNNNN.png`` named by frame index (same names as ``vistr segment --png`` masks)."""

    kind = "frames"
    codec = "png"

    def __init__(self, path: Path, *, width: int, height: int, fps: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        super().__init__(path, width=width, height=height, fps=fps)

    def _encode(self, image: np.ndarray, index: int) -> None:
        target = self._tmp / f"{index:05d}.png"
        ok = cv2.imwrite(
            str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        if not ok:
            raise OSError(f"could not write {target}")

    def _finalize(self) -> None:
        if self.path.exists():  # --force: swap only now that the new frames are complete
            old = self.path.with_name(f".{self.path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)

    def _discard(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def open_writer(
    path: str | os.PathLike[str], *, width: int, height: int, fps: float, force: bool = False
) -> FrameWriter:
    """A writer for ``path`` (kind by :func:`output_kind`); refuses an existing output unless ``force``.

    Use it as a context manager (commits on success, removes everything on error)::

        with open_writer("overlay.mp4", width=1280, height=720, fps=30.0) as writer:
            for k, image in enumerate(images):
                writer.write(image, k)
    """
    target = Path(path)
    kind = output_kind(target)
    empty_folder = target.is_dir() and not any(target.iterdir())
    refuse_overwrite(target, force=force or empty_folder)
    if target.exists() and kind != "frames" and target.is_dir():
        raise ConfigError(f"{target} is a folder; name a file for {kind} output")
    if kind == "frames" and target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file; PNG frames need a folder, or add a suffix such as .mp4")
    if kind == "frames" and target.is_dir() and any(p.suffix.lower() != ".png" for p in target.iterdir()):
        # --force replaces a previous PNG sequence, never a folder holding anything else.
        raise OutputExistsError(f"{target} holds files other than PNG frames; choose a new or empty folder")
    writer_class = {"video": VideoWriter, "gif": GifWriter, "frames": PngSequenceWriter}[kind]
    return writer_class(target, width=width, height=height, fps=fps)
