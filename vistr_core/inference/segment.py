"""``vistr segment`` as a library call: many videos in, one output folder per video.

Per video, ``OUT/<name>/`` is built in a temporary sibling folder and renamed into place when
complete (:func:`vistr_core.atomic.atomic_directory`), so a folder with ``meta.json`` is a finished
video: a rerun skips it unless ``force``. A video that fails (corrupt, empty, not a video) is
recorded with its one-line reason and the batch goes on. ``rank``/``world_size`` shard the list:
video i goes to rank ``i % world_size``.

``<name>`` is the video file's stem or the frame folder's name; when several inputs share a name,
each gets its parent folder's name as a prefix (``a__clip``, ``b__clip``), then a counter if that
still collides, so names do not depend on which rank processes which video.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..atomic import atomic_directory, atomic_write_json
from ..categories import CategoryMap
from ..config import InferConfig, config_to_dict
from ..data.video_io import VideoSource, iter_videos, open_video
from ..engine.device import select_device
from ..errors import CHECKPOINT_HINT, ConfigError, VistrError
from ..progress import ProgressCallback, ProgressUpdate, no_progress
from ..version import __version__
from .segmenter import VideoSegmenter
from .tracker import FinalTrack
from .writers import SpoolWriter, build_results, write_frame_outputs, write_results

SPOOL_NAME = ".frames.spool.jsonl"


@dataclass(frozen=True)
class OutputOptions:
    """Optional outputs besides results.json and meta.json."""

    png: bool = False
    mots: bool = False
    render: bool = False
    render_style: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FrameRange:
    """Which source frames to process: ``start``, stop before ``end``, every ``stride``-th."""

    start: int = 0
    end: int | None = None
    stride: int = 1


@dataclass(frozen=True)
class VideoStatus:
    """One row of the batch summary."""

    source: Path
    name: str
    status: Literal["done", "skipped", "failed"]
    frames: int = 0
    tracks: int = 0
    fps: float = 0.0
    message: str = ""


@dataclass
class SegmentSummary:
    """Per-video outcomes of :func:`segment_videos` (this rank's share when sharded)."""

    videos: list[VideoStatus] = field(default_factory=list)

    @property
    def failed(self) -> list[VideoStatus]:
        return [v for v in self.videos if v.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


def output_names(videos: Sequence[Path]) -> list[str]:
    """A distinct folder name per video (see the module docstring)."""
    stems = [v.stem if v.is_file() else v.name for v in videos]
    counts = Counter(stems)
    names = [f"{v.parent.name}__{s}" if counts[s] > 1 else s for v, s in zip(videos, stems, strict=True)]
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def is_finished(folder: Path) -> bool:
    return (folder / "meta.json").is_file()


def segment_videos(
    inputs: Sequence[str | Path],
    out_dir: Path,
    *,
    checkpoint: Path | None = None,
    model: nn.Module | None = None,
    infer: InferConfig | None = None,
    device: str | torch.device = "auto",
    outputs: OutputOptions | None = None,
    frames: FrameRange | None = None,
    video_id: int = 1,
    force: bool = False,
    recursive: bool = True,
    rank: int = 0,
    world_size: int = 1,
    progress: ProgressCallback = no_progress,
    on_video: Callable[[VideoStatus], None] | None = None,
) -> SegmentSummary:
    """Segment every video named by ``inputs`` (files, frame folders, folders to search, globs).

    Args:
        checkpoint: a `vistr train` checkpoint or an official release file (or pass ``model``).
        model: an already loaded VisTR (with ``.config``, ``.categories``, ``.data_config``); it
            stays on its device when ``device`` is "auto".
        video_id: the ``video_id`` written in every results.json.
        on_video: called with each video's status as soon as it is known.
    Returns:
        one :class:`VideoStatus` per video of this rank, in input order.
    """
    infer = infer or InferConfig()
    outputs = outputs or OutputOptions()
    frames = frames or FrameRange()
    # outputs inside a searched folder (masks/ looks like a frame folder) are never inputs
    videos = [v for v in iter_videos(inputs, recursive=recursive) if not _inside(v, out_dir)]
    names = output_names(videos)
    mine = [(v, n) for i, (v, n) in enumerate(zip(videos, names, strict=True)) if i % world_size == rank]
    todo = [(v, n) for v, n in mine if force or not is_finished(out_dir / n)]
    summary = SegmentSummary()
    job: _Job | None = None
    if todo:
        if model is None:
            model = _load(checkpoint, select_device(device) if isinstance(device, str) else device)
        # a given model stays on its device unless a device is asked for explicitly
        segmenter = VideoSegmenter(model, infer=infer, device=None if device == "auto" else device)
        job = _Job(segmenter, frames, video_id, outputs, checkpoint, force, progress)
    for done, (video, name) in enumerate(mine):
        progress(ProgressUpdate("videos", done, len(mine), description=name))
        if job is None or (not force and is_finished(out_dir / name)):
            status = VideoStatus(video, name, "skipped", message="already done; --force to redo")
        else:
            status = job.run(video, out_dir / name)
        summary.videos.append(status)
        if on_video is not None:
            on_video(status)
    progress(ProgressUpdate("videos", len(mine), len(mine), done=True))
    return summary


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def _load(checkpoint: Path | None, device: torch.device) -> nn.Module:
    if checkpoint is None:
        raise ConfigError(f"no model given; {CHECKPOINT_HINT}")
    from ..model.loading import load_model

    return load_model(checkpoint, device=device)


@dataclass(frozen=True)
class _Job:
    """What every video of one batch shares."""

    segmenter: VideoSegmenter
    frames: FrameRange
    video_id: int
    outputs: OutputOptions
    checkpoint: Path | None
    force: bool
    progress: ProgressCallback

    def run(self, source: Path, target: Path) -> VideoStatus:
        """Segment one video into ``target``; failures become a ``failed`` status."""
        started, name = time.perf_counter(), target.name
        frames = self.frames
        try:
            with open_video(source, start=frames.start, end=frames.end, stride=frames.stride) as video:
                with atomic_directory(target, force=self.force) as tmp:
                    count, tracks = self.segment_into(video, tmp, name)
        except (VistrError, OSError, torch.OutOfMemoryError) as err:
            message = str(err) if isinstance(err, VistrError) else f"{source}: {type(err).__name__}: {err}"
            return VideoStatus(source, name, "failed", message=" ".join(message.split()))
        fps = count / max(time.perf_counter() - started, 1e-9)
        return VideoStatus(source, name, "done", frames=count, tracks=tracks, fps=fps)

    def segment_into(self, video: VideoSource, folder: Path, name: str) -> tuple[int, int]:
        """Stream ``video`` through the segmenter and write every output into ``folder``."""
        segmenter, outputs = self.segmenter, self.outputs
        spool = folder / SPOOL_NAME
        count = self.stream_to_spool(video, spool, name)
        tracks = segmenter.tracks()
        size = segmenter.size or (video.height, video.width)
        categories = segmenter.model.categories
        results = build_results(
            spool, tracks, num_frames=count, size=size, video_id=self.video_id, categories=categories
        )
        write_results(folder / "results.json", results)
        indices = [f.index for f in segmenter.frames]
        write_frame_outputs(
            spool,
            folder,
            tracks,
            frame_indices=indices,
            size=size,
            categories=categories,
            png=outputs.png,
            mots=outputs.mots,
        )
        spool.unlink()
        if outputs.render:
            _render(results, video, folder, categories, indices, outputs, self.progress)
        meta = _meta(segmenter, video, tracks, self.checkpoint, outputs)
        atomic_write_json(folder / "meta.json", meta, indent=1)  # last: marks the video finished
        return count, len(tracks)

    def stream_to_spool(self, video: VideoSource, spool: Path, name: str) -> int:
        """Segment ``video``, appending each output frame's RLEs to ``spool``; the frame count."""
        started, count = time.perf_counter(), 0
        with SpoolWriter(spool) as writer:
            for result in self.segmenter.stream(video):
                for frame in result.frames:
                    writer.write(frame)
                count = writer.frames
                info = {"fps": count / max(time.perf_counter() - started, 1e-9)}
                self.progress(ProgressUpdate("frames", count, video.frame_count, description=name, info=info))
        self.progress(ProgressUpdate("frames", count, count, description=name, done=True))
        return count


def _render(
    results: list[dict[str, Any]],
    video: VideoSource,
    folder: Path,
    categories: CategoryMap,
    frame_indices: list[int],
    outputs: OutputOptions,
    progress: ProgressCallback,
) -> None:
    """overlay.mp4 through :func:`vistr_core.render.render_overlay` (same palette as the PNGs)."""
    from ..render import render_overlay

    render_overlay(
        results,
        video.path,
        folder / "overlay.mp4",
        style=outputs.render_style or None,
        categories=categories,
        frame_indices=frame_indices,
        progress=progress,
        force=True,
    )


def _meta(
    segmenter: VideoSegmenter,
    video: VideoSource,
    tracks: Sequence[FinalTrack],
    checkpoint: Path | None,
    outputs: OutputOptions,
) -> dict[str, Any]:
    model = segmenter.model
    height, width = segmenter.size or (video.height, video.width)
    infos = segmenter.frames
    return {
        "source": str(Path(video.path).resolve()),
        "kind": video.kind,
        "width": width,
        "height": height,
        "frame_count": len(infos),
        "source_frame_count": video.source_frame_count,
        "fps": video.fps,
        "frame_range": {"start": video.start, "end": video.end, "stride": video.stride},
        "frame_names": [f.name for f in infos],
        "frame_indices": [f.index for f in infos],
        "timestamps": [round(f.timestamp, 6) for f in infos],
        "categories": {str(k): v for k, v in model.categories.id_to_name().items()},
        "tracks": [
            {
                "track_id": t.track_id,
                "category_id": model.categories.ids[t.label],
                "score": round(t.score, 6),
                "first_frame": infos[t.first_position].index,
                "last_frame": infos[t.last_position].index,
                "num_frames": t.num_frames,
            }
            for t in tracks
        ],
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint is not None else None,
        "settings": {
            "infer": config_to_dict(segmenter.infer),
            "overlap": segmenter.overlap,
            "window": segmenter.num_frames,
            "device": str(segmenter.device),
            "model": config_to_dict(model.config),
            "outputs": {"png": outputs.png, "mots": outputs.mots, "render": outputs.render},
        },
        "vistr_version": __version__,
    }
