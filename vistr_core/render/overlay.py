"""Overlay videos: tracks drawn on their source frames, streamed frame by frame to a writer.

- :class:`OverlayWriter` — the streaming piece: give it a frame and its instances, it draws and
  queues the result for encoding. One or more *panes* side by side (ground truth | predictions),
  each optionally followed by a legend panel.
- :func:`render_overlay` — a whole video from a results list and its source video.
- :func:`render_ground_truth` — a dataset video's annotations, alone or beside results.

Memory stays bounded: frames are decoded on a background thread a few ahead, masks are decoded
per frame straight into bounding-box crops, and encoding runs on another thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..categories import CategoryMap
from ..data.prefetch import prefetch
from ..data.video_io import VideoSource, open_frame_files, open_video
from ..errors import ResultsError, VideoError
from ..progress import ProgressCallback, ProgressUpdate, no_progress
from .crops import MaskCrop, crops_from_masks, crops_from_rles
from .draw import OverlayStyle, draw_crops, label_patch, paste
from .legend import LegendPanel
from .tracks import (
    Track,
    category_names,
    ground_truth_video,
    mask_size,
    num_frames,
    read_results,
    tracks_from_results,
)
from .writer import CommitOnSuccess, FrameWriter, open_writer

DEFAULT_GT_FPS = 6.0  # YouTube-VIS annotates every 5th frame of 30 fps video


@dataclass(frozen=True)
class RenderSummary:
    """What was written.

    Attributes:
        output: the file or folder.
        kind: ``"video"``, ``"gif"`` or ``"frames"`` (PNG sequence).
        codec: encoder used (``libx264``, ``mpeg4``, ``gif``, ``png``).
        frames, width, height, fps: of the written frames (width includes panes and legends).
        tracks: tracks drawn (after the score threshold), summed over panes.
        hidden: tracks not drawn because they score below ``style.score_thr``.
        seconds: wall time.
    """

    output: Path
    kind: str
    codec: str
    frames: int
    width: int
    height: int
    fps: float
    tracks: int
    seconds: float
    hidden: int = 0


@dataclass(frozen=True)
class PaneInstances:
    """The instances of one pane in one frame: parallel sequences (crops None = absent)."""

    crops: Sequence[MaskCrop | None]
    track_ids: Sequence[int]
    labels: Sequence[str] | None = None


class OverlayWriter(CommitOnSuccess):
    """Draw instances on frames and write them (video, GIF or PNG folder by ``output``'s suffix).

    Args:
        output: the file or folder to write (atomic: appears only on :meth:`commit`).
        width, height: source frame size; fps: output frame rate.
        style: what to draw.
        legends: per pane, the legend rows ``(track_id, text)`` (used when ``style.legend``).
        titles: per pane, a caption in its bottom-left corner (e.g. "ground truth"), which labels
            keep clear of where there is room; None for none.
        panes: number of copies of the frame side by side, each with its own instances.
        force: overwrite an existing output.

    Use as a context manager; :meth:`write` for one pane, :meth:`write_panes` for several::

        with OverlayWriter(Path("overlay.mp4"), width=w, height=h, fps=30.0) as writer:
            for frame in video:
                writer.write(frame.image, masks, track_ids, labels, index=frame.index)
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        style: OverlayStyle = OverlayStyle(),
        legends: Sequence[Sequence[tuple[int, str]]] | None = None,
        titles: Sequence[str] | None = None,
        panes: int = 1,
        force: bool = False,
    ) -> None:
        self.style, self.width, self.height, self.panes = style, width, height, panes
        scale = style.text_scale(height, width)
        self._legends: list[LegendPanel | None] = [None] * panes
        if style.legend:
            entries = list(legends) if legends is not None else [[] for _ in range(panes)]
            self._legends = [LegendPanel(rows, height=height, scale=scale) for rows in entries]
        self._titles = [
            label_patch(t, (40, 40, 40), scale) if t else None for t in (titles or [None] * panes)
        ]
        self.pane_width = width + max((lg.width for lg in self._legends if lg is not None), default=0)
        self.writer: FrameWriter = open_writer(
            output, width=self.pane_width * panes, height=height, fps=fps, force=force
        )

    def write(
        self,
        image: np.ndarray,
        masks: np.ndarray | Sequence[MaskCrop | None],
        track_ids: Sequence[int],
        labels: Sequence[str] | None = None,
        *,
        boxes: np.ndarray | None = None,
        index: int | None = None,
    ) -> None:
        """Draw one frame's instances and queue it.

        Args:
            image: ``uint8 [H, W, 3]`` RGB source frame.
            masks: ``bool [N, H, W]`` full masks, or N :class:`MaskCrop` (None = absent).
            track_ids: ``[N]`` track ids; labels: ``[N]`` texts or None.
            boxes: ``[N, 4]`` xyxy boxes for full masks if known.
            index: the frame's true index (names PNG files); a running count if None.
        """
        crops = crops_from_masks(masks, boxes) if isinstance(masks, np.ndarray) else masks
        self.write_panes(image, [PaneInstances(crops, track_ids, labels)], index=index)

    def write_panes(
        self, image: np.ndarray, panes: Sequence[PaneInstances], *, index: int | None = None
    ) -> None:
        """Like :meth:`write` with one :class:`PaneInstances` per pane (left to right)."""
        if len(panes) != self.panes:
            raise ValueError(f"expected {self.panes} panes, got {len(panes)}")
        if image.shape != (self.height, self.width, 3):
            raise VideoError(
                f"frame {index} is {image.shape[1]}x{image.shape[0]}, expected {self.width}x{self.height}; "
                "all frames must have the size the writer was opened with"
            )
        canvas = np.empty((self.height, self.pane_width * self.panes, 3), dtype=np.uint8)
        for k, pane in enumerate(panes):
            x = k * self.pane_width
            view = canvas[:, x : x + self.width]
            title = self._titles[k]
            clear = () if title is None else ((0, self.height - title.shape[0], title.shape[1], self.height),)
            draw_crops(
                image, pane.crops, pane.track_ids, pane.labels, style=self.style, out=view, keep_clear=clear
            )
            legend = self._legends[k]
            if legend is not None:
                present = [t for t, c in zip(pane.track_ids, pane.crops, strict=True) if c is not None]
                legend.draw(canvas[:, x + self.width : x + self.pane_width], present)
            if title is not None:
                paste(view, title, 0, self.height - title.shape[0])
        self.writer.write(canvas, index)

    def commit(self) -> FrameWriter:
        self.writer.commit()
        return self.writer

    def abort(self) -> None:
        self.writer.abort()


# -- planning which source frames carry which results frame ------------------------------------


def _regular_stride(indices: Sequence[int]) -> int:
    steps = {b - a for a, b in zip(indices, indices[1:], strict=False)}
    return steps.pop() if len(steps) == 1 else (1 if not steps else 0)


def _wanted_frames(
    length: int, frame_indices: Sequence[int] | None, start: int | None, end: int | None
) -> dict[int, int]:
    """``{source frame index: results frame position}`` for the frames to draw."""
    indices = list(frame_indices) if frame_indices is not None else list(range(length))
    if len(indices) != length:
        raise ResultsError(
            f"meta.json lists {len(indices)} frame_indices but the results have {length} frames per track; "
            "pass --video explicitly or re-run vistr segment"
        )
    wanted = {
        int(i): p for p, i in enumerate(indices) if (start is None or i >= start) and (end is None or i < end)
    }
    if not wanted:
        raise ResultsError(
            f"no results frame lies in --start {start} --end {end}; choose a range inside 0..{indices[-1]}"
        )
    return wanted


def _open_for(video: str | os.PathLike[str], wanted: Mapping[int, int], fps: float | None) -> VideoSource:
    keys = sorted(wanted)
    stride = _regular_stride(keys) or 1
    return open_video(video, start=keys[0], end=keys[-1] + 1, stride=stride, fps=fps)


def _check_fits(video: VideoSource, tracks: Sequence[Track], wanted: Mapping[int, int], source: str) -> None:
    size = mask_size(tracks, source)
    if size is not None and size != (video.height, video.width):
        raise ResultsError(
            f"{source} masks are {size[1]}x{size[0]} but video {video.path} is {video.width}x{video.height}; "
            "pass the --video the results were made from"
        )
    last = max(wanted)
    if video.source_frame_count <= last:
        raise ResultsError(
            f"{source} needs frame {last} but {video.path} has {video.source_frame_count} frames; "
            "pass the --video the results were made from (and its meta.json's --start/--stride)"
        )


# -- whole videos --------------------------------------------------------------------------------


def _style(style: OverlayStyle | Mapping[str, Any] | None) -> OverlayStyle:
    if style is None:
        return OverlayStyle()
    return style if isinstance(style, OverlayStyle) else OverlayStyle(**dict(style))


def _visible(tracks: Sequence[Track], style: OverlayStyle) -> list[Track]:
    """Tracks over the threshold, lowest score first so the best is drawn on top."""
    kept = [t for t in tracks if t.score is None or t.score >= style.score_thr]
    return sorted(kept, key=lambda t: -math.inf if t.score is None else t.score)


def _legend_rows(tracks: Sequence[Track], names: Mapping[int, str]) -> list[tuple[int, str]]:
    rows = []
    for t in sorted(tracks, key=lambda t: t.track_id):
        score = "" if t.score is None else f" {t.score:.2f}"
        rows.append(
            (t.track_id, f"#{t.track_id}  {names.get(t.category_id, f'class {t.category_id}')}{score}")
        )
    return rows


def _pane(tracks: Sequence[Track], labels: Sequence[str], position: int) -> PaneInstances:
    present = [k for k, t in enumerate(tracks) if t.rles[position] is not None]
    crops = crops_from_rles([tracks[k].rles[position] for k in present])
    return PaneInstances(crops, [tracks[k].track_id for k in present], [labels[k] for k in present])


def _marked(label: str, reason: str | None) -> str:
    """A flagged track's label leads with ``!`` and the review's reason: ``! fragment | cat 0.41 #3``."""
    return label if reason is None else f"! {reason} | {label}"


def _render_layers(
    video: VideoSource,
    layers: Sequence[Sequence[Track]],
    hidden: int,
    wanted: Mapping[int, int],
    output: Path,
    *,
    style: OverlayStyle,
    names: Mapping[int, str],
    fps: float,
    titles: Sequence[str] | None,
    progress: ProgressCallback,
    force: bool,
    marks: Mapping[int, str] | None = None,
) -> RenderSummary:
    started = time.perf_counter()
    marks = marks or {}
    labels = [[_marked(t.label(names), marks.get(t.track_id)) for t in layer] for layer in layers]
    total, seen = len(wanted), set()
    writer = OverlayWriter(
        output,
        width=video.width,
        height=video.height,
        fps=fps,
        style=style,
        legends=[_legend_rows(layer, names) for layer in layers],
        titles=titles,
        panes=len(layers),
        force=force,
    )
    # Exit order: the decoding thread stops first, then the output is committed (or removed).
    with contextlib.ExitStack() as stack:
        stack.enter_context(writer)
        frames = stack.enter_context(contextlib.closing(prefetch(video, depth=4)))
        for frame in frames:
            position = wanted.get(frame.index)
            if position is None:
                continue
            panes = [_pane(layer, lab, position) for layer, lab in zip(layers, labels, strict=True)]
            writer.write_panes(frame.image, panes, index=frame.index)
            seen.add(frame.index)
            progress(ProgressUpdate(task="frames", completed=len(seen), total=total, description=output.name))
        if len(seen) < total:
            missing = min(set(wanted) - seen)
            raise VideoError(
                f"{video.path} ended before frame {missing} that the results need; "
                "pass the --video the results were made from"
            )
    progress(ProgressUpdate(task="frames", completed=total, total=total, description=output.name, done=True))
    out = writer.writer
    return RenderSummary(
        output=output,
        kind=out.kind,
        codec=out.codec,
        frames=out.frames_written,
        width=out.width,
        height=out.height,
        fps=out.fps,
        tracks=sum(len(layer) for layer in layers),
        hidden=hidden,
        seconds=time.perf_counter() - started,
    )


def _load_tracks(
    results: Sequence[Mapping[str, Any]] | str | os.PathLike[str], video_id: int | None
) -> tuple[list[Track], str]:
    """The tracks of one video from a results list or file, and a name for messages."""
    if isinstance(results, str | os.PathLike):
        tracks, _ = tracks_from_results(read_results(results), video_id=video_id, source=Path(results).name)
        return tracks, Path(results).name
    tracks, _ = tracks_from_results(results, video_id=video_id, source="results")
    return tracks, "results"


def render_overlay(
    results: Sequence[Mapping[str, Any]] | str | os.PathLike[str],
    video: str | os.PathLike[str] | VideoSource,
    output: str | os.PathLike[str],
    *,
    style: OverlayStyle | Mapping[str, Any] | None = None,
    categories: Mapping[int, str] | CategoryMap | None = None,
    progress: ProgressCallback = no_progress,
    force: bool = False,
    video_id: int | None = None,
    frame_indices: Sequence[int] | None = None,
    start: int | None = None,
    end: int | None = None,
    fps: float | None = None,
    review: Mapping[int, str] | None = None,
) -> RenderSummary:
    """Render a results list's tracks over their video.

    Args:
        results: a YouTube-VIS results list, or the path of its JSON file.
        video: the source: a path (video file or frame folder) or an open :class:`VideoSource`
            whose yielded frames are the results frames one to one (as in ``vistr segment``).
        output: ``.mp4`` (H.264), ``.gif``, or a folder for PNG frames.
        style: :class:`OverlayStyle` (or a dict of its fields); default style if None.
        categories: category id → name for labels (a dict with int or str keys, or a CategoryMap).
        video_id: which video of a multi-video results list (None: the only one).
        frame_indices: the true source index of each results frame (``meta.json``'s
            ``frame_indices``); None: results frame k is source frame k.
        start, end: draw only source frames ``start <= index < end``.
        fps: output frame rate; default the source's, divided by the results' frame stride.
        review: track id → reason for the tracks ``vistr review`` flagged: their labels lead with
            ``! reason``, and they are drawn even below ``style.score_thr``.

    Returns:
        a :class:`RenderSummary`. Nothing is written if any check fails (sizes, frame counts).
    """
    style = _style(style)
    tracks, source = _load_tracks(results, video_id)
    length = num_frames(tracks)
    if isinstance(video, VideoSource):
        length = video.frame_count if length is None else length
        if length != video.frame_count:
            raise ResultsError(
                f"{source} has {length} frames per track but {video.path} yields {video.frame_count}; "
                "pass the video (and --start/--stride) the results were made from"
            )
        wanted = _wanted_frames(length, frame_indices or list(video.frame_indices), start, end)
        opened = video
    else:
        if length is None:  # an empty results list: draw the plain video
            with open_video(video, fps=fps) as probe:
                length = probe.frame_count
        wanted = _wanted_frames(length, frame_indices, start, end)
        opened = _open_for(video, wanted, fps)
        if frame_indices is None and opened.source_frame_count != length:
            opened.close()
            raise ResultsError(
                f"{source} has {length} frames per track but {opened.path} has "
                f"{opened.source_frame_count}; pass the --video the results were made from, or keep its meta.json beside the results"
            )
    try:
        _check_fits(opened, tracks, wanted, source)
        stride = _regular_stride(sorted(wanted)) or 1
        visible = {id(t) for t in _visible(tracks, style)}
        shown = [t for t in tracks if id(t) in visible or t.track_id in (review or {})]
        return _render_layers(
            opened,
            [shown],
            len(tracks) - len(shown),
            wanted,
            Path(output),
            style=style,
            names=category_names(categories),
            fps=fps or opened.fps / stride,
            titles=None,
            progress=progress,
            force=force,
            marks=review,
        )
    finally:
        if opened is not video:
            opened.close()


def render_ground_truth(
    annotation_file: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    video_id: int | None = None,
    frames_root: str | os.PathLike[str] | None = None,
    results: Sequence[Mapping[str, Any]] | str | os.PathLike[str] | None = None,
    style: OverlayStyle | Mapping[str, Any] | None = None,
    progress: ProgressCallback = no_progress,
    force: bool = False,
    start: int | None = None,
    end: int | None = None,
    fps: float | None = None,
) -> RenderSummary:
    """Render a YouTube-VIS annotation file's video (frames at ``frames_root/file_names[t]``);
    with ``results``, ground truth (left) and predictions (right) side by side.

    ``fps`` defaults to 6 (YouTube-VIS's annotation rate). Other arguments as in :func:`render_overlay`.
    """
    style = _style(style)
    gt = ground_truth_video(annotation_file, video_id=video_id, frames_root=frames_root)
    layers = [_visible(gt.tracks, style)]
    titles = None
    predicted: list[Track] = []
    length = len(gt.frame_files)
    if results is not None:
        predicted, source = _load_tracks(results, gt.video_id)
        if predicted and num_frames(predicted) != length:
            raise ResultsError(
                f"{source} has {num_frames(predicted)} frames per track for video {gt.video_id} "
                f"but {annotation_file} lists {length}; pass results made on this annotation file"
            )
        size = mask_size(predicted, source)
        if size is not None and size != gt.size:
            raise ResultsError(
                f"{source} masks are {size[1]}x{size[0]} but video {gt.video_id} is "
                f"{gt.size[1]}x{gt.size[0]}; pass results made on this annotation file"
            )
        layers.append(_visible(predicted, style))
        titles = ["ground truth", "predictions"]
    wanted = _wanted_frames(length, None, start, end)
    keys = sorted(wanted)
    video = open_frame_files(gt.frame_files, start=keys[0], end=keys[-1] + 1, fps=fps or DEFAULT_GT_FPS)
    with video:
        if (video.height, video.width) != gt.size:
            raise ResultsError(
                f"frames of video {gt.video_id} are {video.width}x{video.height} but {annotation_file} says "
                f"{gt.size[1]}x{gt.size[0]}; check --frames-root"
            )
        return _render_layers(
            video,
            layers,
            len(gt.tracks) + len(predicted) - sum(len(layer) for layer in layers),
            wanted,
            Path(output),
            style=style,
            names=gt.categories,
            fps=video.fps,
            titles=titles,
            progress=progress,
            force=force,
        )
