"""Reading videos: a video file in any container PyAV decodes, or a folder of frame images.

:func:`open_video` returns a :class:`VideoSource` that streams :class:`Frame` objects one at a time
(memory stays bounded whatever the length). :func:`iter_videos` expands the inputs a user types
(files, folders, globs) into the list of videos to process, in natural order.

Frame folders are sorted *naturally*: digit runs compare as numbers and letters ignore case, so
``2.jpg`` comes before ``10.jpg`` and ``frame_9.png`` before ``frame_10.png``; names that compare
equal that way (``frame_9`` and ``frame_009``) are ordered by their full name.

Errors: a file that cannot be opened or whose first frame cannot be decoded raises
:class:`~vistr_core.errors.VideoError` in :func:`open_video` (the first frame is probed there); a
decode failure or a change of frame size later on raises :class:`VideoError` during iteration,
naming the frame.
"""

from __future__ import annotations

import glob
import math
import os
import re
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np

from ..errors import ConfigError, VideoError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
        ".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".gif",
    }
)  # fmt: skip
DEFAULT_FOLDER_FPS = 30.0
# Display-matrix rotation (degrees counter-clockwise, as PyAV reports it) -> the turn that shows
# the frame upright, as players do: phone videos are stored sideways with such a tag.
_ROTATIONS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key putting ``2.jpg`` before ``10.jpg`` and ``Frame_9`` before ``frame_10``.

    Digit runs compare as integers, other text case-insensitively; ties are broken by the full name
    so the order is total and deterministic.
    """
    parts = _DIGITS.split(name.lower())
    # split() alternates text (even positions) and digits (odd positions), so keys of two names
    # always compare str with str and int with int.
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: the frame's true index in the source (0-based, before start/end/stride).
        timestamp: seconds since the source's first frame (from pts × time_base for files, so
            variable frame rates are honoured; index / fps for frame folders).
        name: the image file name for frame folders; the zero-padded index (``"00042"``) for files.
        image: ``uint8 [H, W, 3]`` RGB.
    """

    index: int
    timestamp: float
    name: str
    image: np.ndarray


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _list_frames(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and _is_image(p)), key=lambda p: natural_key(p.name)
    )


def _selected_count(total: int, start: int, end: int | None, stride: int) -> int:
    stop = total if end is None else min(end, total)
    return max(0, math.ceil((stop - start) / stride))


class VideoSource:
    """An opened video file or frame folder. Iterate it for :class:`Frame` objects.

    Use :func:`open_video` to create one. Each iteration decodes afresh from the start, so a source
    may be iterated more than once; ``close()`` (or leaving the ``with`` block) ends any iteration
    in progress.

    Attributes:
        path: the file or folder.
        kind: ``"file"`` or ``"frames"``.
        width, height: frame size in pixels, upright: a file's display rotation (phone videos) is
            applied to every frame, as players do.
        fps: frames per second (the container's average rate; for folders the ``fps`` given to
            :func:`open_video`, default 30).
        frame_count: number of frames iteration will yield (after start/end/stride).
        source_frame_count: number of frames in the whole source.
        frame_names: image file names of the selected frames for folders; None for files.
        start, end, stride: the selection, as given.
    """

    def __init__(
        self,
        path: Path,
        *,
        start: int = 0,
        end: int | None = None,
        stride: int = 1,
        fps: float | None = None,
        frame_files: Sequence[Path] | None = None,
    ) -> None:
        if start < 0 or stride < 1 or (end is not None and end <= start):
            raise ConfigError(
                f"invalid frame range start={start} end={end} stride={stride}; "
                "need start >= 0, end > start and stride >= 1"
            )
        if fps is not None and not fps > 0:
            raise ConfigError(f"invalid fps {fps}; pass a positive frame rate")
        self.path = path
        self.start, self.end, self.stride = start, end, stride
        self._closed = False
        self._iterations: weakref.WeakSet = weakref.WeakSet()
        self.kind: Literal["file", "frames"]
        if frame_files is not None or path.is_dir():
            self.kind = "frames"
            self._open_folder(fps, frame_files)
        else:
            self.kind = "file"
            self._open_file(fps)
        # Checked now only when it is free: counting an undeclared file would read it all at open.
        count_known = self.kind == "frames" or self._declared_frames > 0
        if count_known and self.frame_count == 0:
            raise VideoError(
                f"{path}: no frames in the range start={start} end={end} stride={stride} "
                f"(the source has {self.source_frame_count} frames); choose another --start/--end"
            )

    # -- frame folders -------------------------------------------------------------------------

    def _open_folder(self, fps: float | None, frame_files: Sequence[Path] | None) -> None:
        self._frame_paths = list(frame_files) if frame_files is not None else _list_frames(self.path)
        if not self._frame_paths:
            raise VideoError(
                f"{self.path} contains no frame images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                "pass a video file or a folder of frames"
            )
        if not self._frame_paths[0].is_file():
            raise VideoError(
                f"frame {self._frame_paths[0]} does not exist; check the frames folder (--frames-root)"
            )
        first = self._read_image(self._frame_paths[0])
        self.height, self.width = first.shape[:2]
        self.fps = float(fps) if fps is not None else DEFAULT_FOLDER_FPS
        self.source_frame_count = len(self._frame_paths)
        self._selected_paths = self._frame_paths[self.start : self.end : self.stride]
        self.frame_names: list[str] | None = [p.name for p in self._selected_paths]

    def _read_image(self, path: Path) -> np.ndarray:
        # imdecode(fromfile) rather than imread: it also reads non-ASCII paths on Windows.
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except FileNotFoundError:
            raise VideoError(
                f"frame {path} does not exist; check the frames folder (--frames-root)"
            ) from None
        except OSError as err:
            raise VideoError(
                f"cannot read frame {path}: {_reason(err)}; check the file's permissions"
            ) from None
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise VideoError(f"cannot decode frame {path}; is it an image? Remove or replace it")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _iter_folder(self) -> Iterator[Frame]:
        for k, path in enumerate(self._selected_paths):
            if self._closed:
                return
            image = self._read_image(path)
            if image.shape[:2] != (self.height, self.width):
                raise VideoError(
                    f"frame {path} is {image.shape[1]}x{image.shape[0]} but the first frame of "
                    f"{self.path} is {self.width}x{self.height}; all frames must have one size"
                )
            index = self.start + k * self.stride
            yield Frame(index=index, timestamp=index / self.fps, name=path.name, image=image)

    # -- video files ---------------------------------------------------------------------------

    def _container(self) -> av.container.InputContainer:
        try:
            container = av.open(str(self.path), mode="r", metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
            raise VideoError(f"cannot decode {self.path}: {_reason(err)}; is it a video?") from None
        if not container.streams.video:
            container.close()
            raise VideoError(f"cannot decode {self.path}: it has no video stream; is it a video?")
        return container

    def _open_file(self, fps: float | None) -> None:
        if not self.path.exists():
            raise VideoError(f"no such video {self.path}; check the path")
        container = self._container()
        try:
            stream = container.streams.video[0]
            first = next(self._decode(container, stream, 0), None)
            if first is None:
                raise VideoError(f"cannot decode {self.path}: it has no decodable frame; is it a video?")
            self._coded_size = (first.width, first.height)
            self._rotate = _ROTATIONS.get(round(first.rotation / 90) * 90 % 360)
            quarter_turn = self._rotate in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE)
            self.width, self.height = (
                (first.height, first.width) if quarter_turn else (first.width, first.height)
            )
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else float(fps or DEFAULT_FOLDER_FPS)
            self._declared_frames = int(stream.frames or 0)
        finally:
            container.close()
        self.frame_names = None

    @cached_property
    def source_frame_count(self) -> int:  # type: ignore[override]  # folders assign it directly
        if self._declared_frames > 0:
            return self._declared_frames
        return self._count_packets()

    def _count_packets(self) -> int:
        """Frames in the file when the container does not say: one demux pass, no decoding."""
        container = self._container()
        try:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
        except av.FFmpegError as err:
            raise VideoError(f"cannot decode {self.path}: {_reason(err)}; is it a video?") from None
        finally:
            container.close()

    def _decode(self, container, stream, index: int) -> Iterator[av.VideoFrame]:
        """Decoded frames, with FFmpeg failures turned into a VideoError naming the frame."""
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except (av.FFmpegError, ValueError) as err:
                raise VideoError(
                    f"cannot decode {self.path} at frame {index}: {_reason(err)}; is it a video? "
                    "Re-encode it or pass --end to stop before the damage"
                ) from None
            yield frame
            index += 1

    def _iter_file(self) -> Iterator[Frame]:
        container = self._container()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame + slice threads: decoding overlaps our work
            time_base = stream.time_base or Fraction(1, 1)
            first_pts: int | None = None
            for index, frame in enumerate(self._decode(container, stream, 0)):
                if first_pts is None:
                    first_pts = frame.pts
                if self._closed or (self.end is not None and index >= self.end):
                    return
                if index < self.start or (index - self.start) % self.stride:
                    continue  # skipped frames are decoded (codecs need it) but never converted
                if (frame.width, frame.height) != self._coded_size:
                    raise VideoError(
                        f"{self.path}: frame {index} is {frame.width}x{frame.height} but the video "
                        f"starts at {self._coded_size[0]}x{self._coded_size[1]}; re-encode it at one size"
                    )
                if frame.pts is not None and first_pts is not None:
                    timestamp = float((frame.pts - first_pts) * time_base)
                else:
                    timestamp = index / self.fps
                image = frame.to_ndarray(format="rgb24")
                if self._rotate is not None:
                    image = cv2.rotate(image, self._rotate)
                yield Frame(index=index, timestamp=timestamp, name=f"{index:05d}", image=image)
        finally:
            container.close()

    # -- common --------------------------------------------------------------------------------

    @cached_property
    def frame_count(self) -> int:
        """Frames that iteration yields (after start/end/stride)."""
        return _selected_count(self.source_frame_count, self.start, self.end, self.stride)

    @property
    def frame_indices(self) -> range:
        """True source indices of the frames iteration yields."""
        return range(self.start, self.start + self.frame_count * self.stride, self.stride)

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise ValueError(f"{self.path} is closed")
        iteration = self._iter_folder() if self.kind == "frames" else self._iter_file()
        self._iterations.add(iteration)
        return iteration

    def __len__(self) -> int:
        return self.frame_count

    def close(self) -> None:
        """Stop every iteration in progress and release the decoder."""
        self._closed = True
        for iteration in list(self._iterations):
            try:
                iteration.close()
            except ValueError:
                pass  # running on another thread (prefetch): it sees _closed and stops at the next frame

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VideoSource({str(self.path)!r}, kind={self.kind!r}, {self.width}x{self.height}, "
            f"fps={self.fps:.3f}, frames={self.frame_count})"
        )


def _reason(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())  # one line, whatever FFmpeg said


def open_video(
    source: str | os.PathLike[str],
    *,
    start: int = 0,
    end: int | None = None,
    stride: int = 1,
    fps: float | None = None,
) -> VideoSource:
    """Open a video file or a folder of frames for streaming.

    Args:
        source: a video file (any container/codec PyAV decodes) or a folder directly containing
            jpg/jpeg/png/bmp/webp frames (natural order).
        start: first source frame to yield (0-based).
        end: stop before this source frame (None = to the end).
        stride: yield every ``stride``-th frame from ``start``.
        fps: frame rate of a frame folder (default 30); for files only a fallback when the
            container declares no rate.

    Raises:
        VideoError: missing path, unreadable/corrupt/empty file, no frames, or an empty range.
        ConfigError: an invalid start/end/stride/fps.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise VideoError(f"no such video or frame folder {path}; check the path")
    return VideoSource(path, start=start, end=end, stride=stride, fps=fps)


def open_frame_files(
    files: Sequence[str | os.PathLike[str]],
    *,
    start: int = 0,
    end: int | None = None,
    stride: int = 1,
    fps: float | None = None,
) -> VideoSource:
    """A :class:`VideoSource` over an explicit list of image files, in the order given.

    For datasets that list their frames (YouTube-VIS ``file_names``). ``path`` is the first
    frame's folder; ``frame_names`` are the files' names. Other arguments as in :func:`open_video`.
    """
    paths = [Path(f).expanduser() for f in files]
    if not paths:
        raise VideoError("no frame files given; pass at least one image")
    return VideoSource(paths[0].parent, start=start, end=end, stride=stride, fps=fps, frame_files=paths)


def _has_images(folder: Path) -> bool:
    try:
        return any(p.is_file() and _is_image(p) for p in folder.iterdir())
    except OSError:
        return False


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    """Video files and frame folders inside ``folder`` (itself included if it holds frames)."""
    if _has_images(folder):
        yield folder
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # skips our own .partial temp folders
        root_path = Path(root)
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                yield root_path / name
        if root_path != folder:
            if _has_images(root_path):
                yield root_path
        if not recursive:
            for d in dirs:
                if _has_images(root_path / d):
                    yield root_path / d
            dirs[:] = []


def _frames_as_folders(
    inputs: Sequence[str | os.PathLike[str]],
) -> tuple[list[str | os.PathLike[str]], list[Path]]:
    """Split off several image files of one folder (an unquoted ``dir/*.jpg`` the shell expanded):
    returns the other inputs and those folders, each one video.

    Raises:
        VideoError: when they are only some of the folder's frames, which would otherwise become
            one-frame videos each.
    """
    images: dict[Path, list[Path]] = {}
    for item in inputs:
        path = Path(os.fspath(item)).expanduser()
        if path.is_file() and _is_image(path):
            images.setdefault(path.parent.resolve(), []).append(path.resolve())
    folders = {folder: files for folder, files in images.items() if len(set(files)) > 1}
    for folder, files in folders.items():
        total = len(_list_frames(folder))
        if len(set(files)) != total:
            raise VideoError(
                f"{len(set(files))} of the {total} frames in {folder} were given as separate files "
                "(a glob the shell expanded?); a frame folder is one video: pass the folder "
                "(--start/--end/--stride choose frames), or quote the glob"
            )
    kept: list[str | os.PathLike[str]] = []
    for item in inputs:
        path = Path(os.fspath(item)).expanduser()
        if not (path.is_file() and _is_image(path) and path.parent.resolve() in folders):
            kept.append(item)
    return kept, list(folders)


def iter_videos(inputs: Sequence[str | os.PathLike[str]], recursive: bool = True) -> list[Path]:
    """Expand user inputs into the videos to process.

    Each input may be a video file (taken as is, whatever its extension), a frame folder, a folder
    to search (video files by extension, and frame folders = folders directly holding images;
    sub-folders too when ``recursive``), or a glob pattern (``"clips/*.mp4"``, ``"data/**"``).
    Several image files of one folder (a glob the shell expanded) stand for that frame folder.
    The result is de-duplicated and naturally sorted.

    Raises:
        VideoError: an input that does not exist or matches no video.
    """
    inputs, frame_folders = _frames_as_folders(inputs)
    found: dict[Path, Path] = {folder: folder for folder in frame_folders}  # resolved -> as spelled
    for item in inputs:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.exists():
            matches = [path]
        elif glob.has_magic(text):
            matches = [Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True)]
        else:
            raise VideoError(f"no such file or folder {text}; check the path or quote the glob")
        videos: list[Path] = []
        for match in matches:
            if match.is_dir():
                videos.extend(_walk(match, recursive))
            elif match.is_file() and (path.exists() or match.suffix.lower() in VIDEO_EXTENSIONS):
                videos.append(match)
            elif match.is_file() and _is_image(match) and _has_images(match.parent):
                videos.append(match.parent)  # a glob over frames ("clip/*.jpg") means the folder
        if not videos:
            raise VideoError(
                f"{text} matches no video file or frame folder; pass videos "
                f"({', '.join(sorted(VIDEO_EXTENSIONS))}) or folders of frames"
            )
        for video in videos:
            found.setdefault(video.resolve(), video)
    return sorted(found.values(), key=lambda p: natural_key(p.as_posix()))
