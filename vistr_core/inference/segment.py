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
from ..config import LOW_SCORE, InferConfig, config_to_dict
from ..data.dataset_video import DatasetVideoFinder
from ..data.video_io import VideoSource, iter_videos, open_video
from ..engine.device import PrecisionChoice, select_device
from ..engine.threads import ThreadGovernor, ThreadSetting
from ..errors import CHECKPOINT_HINT, ConfigError, VistrError
from ..progress import ProgressCallback, ProgressUpdate, no_progress
from ..version import __version__
from .output_dir import drop_if_empty, prepare_output_dir, remove_stale_partials, settings_change
from .segmenter import VideoSegmenter
from .tracker import FinalTrack
from .writers import SpoolWriter, build_results, write_frame_outputs, write_results

SPOOL_NAME = ".frames.spool.jsonl"
DEFAULT_VIDEO_ID = 1


@dataclass(frozen=True)
class OutputOptions:
    """Optional outputs besides results.json and meta.json."""

    png: bool = False
    mots: bool = False
    render: bool = False
    cvat: bool = False  # annotations.xml (CVAT for video 1.1), needs_review from `vistr review`
    render_style: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FrameRange:
    """Which source frames to process: ``start``, stop before ``end``, every ``stride``-th."""

    start: int = 0
    end: int | None = None
    stride: int = 1

    def __post_init__(self) -> None:
        # Checked once for the batch, before any video is opened, rather than failing every video.
        if self.start < 0:
            raise ConfigError(f"--start must be >= 0, got {self.start}")
        if self.stride < 1:
            raise ConfigError(f"--stride must be >= 1, got {self.stride}")
        if self.end is not None and self.end <= self.start:
            raise ConfigError(f"--end {self.end} must be greater than --start {self.start}")


@dataclass(frozen=True)
class VideoStatus:
    """One row of the batch summary."""

    source: Path
    name: str
    status: Literal["done", "skipped", "failed"]
    frames: int = 0
    tracks: int = 0
    low_score: int = 0  # of ``tracks``, those scoring below :data:`~vistr_core.config.LOW_SCORE`
    fps: float = 0.0
    message: str = ""
    changed: bool = False  # skipped although made with another checkpoint or other settings


@dataclass
class SegmentSummary:
    """Per-video outcomes of :func:`segment_videos` (this rank's share when sharded), and the
    precision the model ran in (None when every video was skipped and no model was loaded)."""

    videos: list[VideoStatus] = field(default_factory=list)
    precision: PrecisionChoice | None = None

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
    num_frames: int | None = None,
    infer: InferConfig | None = None,
    device: str | torch.device = "auto",
    outputs: OutputOptions | None = None,
    frames: FrameRange | None = None,
    video_id: int | None = None,
    force: bool = False,
    recursive: bool = True,
    rank: int = 0,
    world_size: int = 1,
    progress: ProgressCallback = no_progress,
    on_video: Callable[[VideoStatus], None] | None = None,
    threads: ThreadSetting = None,
) -> SegmentSummary:
    """Segment every video named by ``inputs`` (files, frame folders, folders to search, globs).

    Args:
        checkpoint: a `vistr train` checkpoint or an official release file (or pass ``model``).
        model: an already loaded VisTR (with ``.config``, ``.categories``, ``.data_config``); it
            stays on its device when ``device`` is "auto".
        num_frames: T for an official checkpoint (its n*T queries do not say T; default 36).
        video_id: the ``video_id`` written in every results.json; None: a frame folder inside a
            YouTube-VIS dataset gets that dataset's id for it, any other video
            :data:`DEFAULT_VIDEO_ID` (``meta.json`` records which: ``video_id_from``).
        on_video: called with each video's status as soon as it is known.
        threads: CPU threads: ``"auto"`` (the free cores, re-checked between windows; see
            :mod:`vistr_core.engine.threads`), a fixed count, or None to leave torch's setting.
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
    created = prepare_output_dir(Path(out_dir)) if todo else False
    remove_stale_partials(Path(out_dir), [n for _, n in mine])
    try:
        with ThreadGovernor(threads if todo else None) as governor:
            if todo:
                job = _job(
                    checkpoint, model, num_frames, infer, device, frames, video_id, outputs, force, progress,
                    governor,
                )  # fmt: skip
                summary.precision = job.segmenter.precision
            settings = _settings(infer, outputs, frames)
            for done, (video, name) in enumerate(mine):
                progress(ProgressUpdate("videos", done, len(mine), description=name))
                if job is None or (not force and is_finished(out_dir / name)):
                    status = _skipped(video, name, out_dir / name, checkpoint, settings)
                else:
                    status = job.run(video, out_dir / name)
                summary.videos.append(status)
                if on_video is not None:
                    on_video(status)
    finally:
        drop_if_empty(Path(out_dir), created=created)
    progress(ProgressUpdate("videos", len(mine), len(mine), done=True))
    return summary


class _VideoIds:
    """The ``video_id`` of each video and where it came from: ``"option"`` (given), ``"dataset"``
    (a frame folder of a YouTube-VIS dataset: that dataset's id) or ``"default"``."""

    def __init__(self, given: int | None) -> None:
        self.given = given
        self.finder = DatasetVideoFinder()

    def of(self, video: VideoSource) -> tuple[int, str]:
        if self.given is not None:
            return self.given, "option"
        found = self.finder.find(video.path) if video.kind == "frames" else None
        return (DEFAULT_VIDEO_ID, "default") if found is None else (found.video_id, "dataset")


def _job(
    checkpoint: Path | None,
    model: nn.Module | None,
    num_frames: int | None,
    infer: InferConfig,
    device: str | torch.device,
    frames: FrameRange,
    video_id: int | None,
    outputs: OutputOptions,
    force: bool,
    progress: ProgressCallback,
    governor: ThreadGovernor,
) -> _Job:
    if model is None:
        model = _load(checkpoint, select_device(device) if isinstance(device, str) else device, num_frames)
    # a given model stays on its device unless a device is asked for explicitly
    segmenter = VideoSegmenter(model, infer=infer, device=None if device == "auto" else device)
    return _Job(segmenter, frames, _VideoIds(video_id), outputs, checkpoint, force, progress, governor)


def _outputs_record(outputs: OutputOptions) -> dict[str, bool]:
    """The optional outputs as ``meta.json`` records them (and a rerun compares them)."""
    return {"png": outputs.png, "mots": outputs.mots, "render": outputs.render, "cvat": outputs.cvat}


def _settings(infer: InferConfig, outputs: OutputOptions, frames: FrameRange) -> dict[str, Any]:
    """This run's settings as :func:`_meta` records them (compared with a finished video's)."""
    return {
        "infer": config_to_dict(infer),
        "outputs": _outputs_record(outputs),
        "frame_range": {"start": frames.start, "end": frames.end, "stride": frames.stride},
    }


def _skipped(
    video: Path, name: str, folder: Path, checkpoint: Path | None, settings: dict[str, Any]
) -> VideoStatus:
    change = settings_change(folder, checkpoint=checkpoint, settings=settings)
    if change:
        message = f"{folder} was {change}; kept as it is, pass --force to redo it with these"
        return VideoStatus(video, name, "skipped", message=message, changed=True)
    return VideoStatus(video, name, "skipped", message="already done; --force to redo")


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def _load(checkpoint: Path | None, device: torch.device, num_frames: int | None = None) -> nn.Module:
    if checkpoint is None:
        raise ConfigError(f"no model given; {CHECKPOINT_HINT}")
    from ..model.loading import load_model

    return load_model(checkpoint, num_frames=num_frames, device=device)


@dataclass(frozen=True)
class _Job:
    """What every video of one batch shares."""

    segmenter: VideoSegmenter
    frames: FrameRange
    video_ids: _VideoIds
    outputs: OutputOptions
    checkpoint: Path | None
    force: bool
    progress: ProgressCallback
    threads: ThreadGovernor

    def run(self, source: Path, target: Path) -> VideoStatus:
        """Segment one video into ``target``; failures become a ``failed`` status."""
        started, name = time.perf_counter(), target.name
        frames = self.frames
        try:
            with open_video(source, start=frames.start, end=frames.end, stride=frames.stride) as video:
                with atomic_directory(target, force=self.force) as tmp:
                    count, tracks = self.segment_into(video, tmp, name)
            low = sum(1 for t in tracks if t.score < LOW_SCORE)
        except (VistrError, OSError, torch.OutOfMemoryError) as err:
            message = str(err) if isinstance(err, VistrError) else f"{source}: {type(err).__name__}: {err}"
            return VideoStatus(source, name, "failed", message=" ".join(message.split()))
        fps = count / max(time.perf_counter() - started, 1e-9)
        return VideoStatus(source, name, "done", frames=count, tracks=len(tracks), low_score=low, fps=fps)

    def segment_into(self, video: VideoSource, folder: Path, name: str) -> tuple[int, list[FinalTrack]]:
        """Stream ``video`` through the segmenter and write every output into ``folder``; returns
        the number of frames and the tracks."""
        segmenter, outputs = self.segmenter, self.outputs
        video_id, video_id_from = self.video_ids.of(video)
        spool = folder / SPOOL_NAME
        count = self.stream_to_spool(video, spool, name)
        tracks = segmenter.tracks()
        size = segmenter.size or (video.height, video.width)
        categories = segmenter.model.categories
        results = build_results(
            spool,
            tracks,
            num_frames=count,
            size=size,
            video_id=video_id,
            categories=categories,
            linked_id=segmenter.linked_id,
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
            linked_id=segmenter.linked_id,
        )
        spool.unlink()
        if outputs.render:
            _render(results, video, folder, categories, indices, outputs, self.progress)
        meta = _meta(segmenter, video, tracks, self.checkpoint, outputs)
        meta.update(video_id=video_id, video_id_from=video_id_from)
        if outputs.cvat:
            _write_cvat(results, meta, folder / "annotations.xml", name)
        meta["settings"]["threads"] = self.threads.summary()
        atomic_write_json(folder / "meta.json", meta, indent=1)  # last: marks the video finished
        return count, list(tracks)

    def stream_to_spool(self, video: VideoSource, spool: Path, name: str) -> int:
        """Segment ``video``, appending each output frame's RLEs to ``spool``; the frame count."""
        started, count = time.perf_counter(), 0
        with SpoolWriter(spool) as writer:
            for result in self.segmenter.stream(video):
                for frame in result.frames:
                    writer.write(frame)
                self.threads.update()  # between windows: follow co-tenants that come and go
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


def _write_cvat(results: list[dict[str, Any]], meta: dict[str, Any], path: Path, name: str) -> None:
    """CVAT for video 1.1 with every track; ``needs_review`` on those `vistr review` flags."""
    from ..review import review_results
    from ..review.cvat import write_results_cvat

    write_results_cvat(results, meta, path, name=name, flagged=review_results(results, meta).flagged)


def _frame_stats(segmenter: VideoSegmenter, track: FinalTrack, count: int) -> dict[str, list[Any]]:
    """Per results frame: the track's score and category id where it has a mask, else null."""
    stats = segmenter.frame_stats.get(track.provisional_id, {})
    ids = segmenter.model.categories.ids
    scores: list[Any] = [None] * count
    categories: list[Any] = [None] * count
    for position, (score, label) in stats.items():
        scores[position] = round(score, 4)
        categories[position] = ids[label]
    return {"frame_scores": scores, "frame_categories": categories}


def _links(segmenter: VideoSegmenter, tracks: Sequence[FinalTrack]) -> list[dict[str, Any]]:
    """Each kept track's continuations (window overlaps and gap resumptions) with their affinity."""
    final = {t.provisional_id: t.track_id for t in tracks}
    infos = segmenter.frames
    return [
        {
            "track_id": final[link.track_id],
            "frame": infos[link.position].index if link.position < len(infos) else link.position,
            "position": link.position,
            "kind": link.kind,
            "iou": link.iou,
            "affinity": link.affinity,
        }
        for link in segmenter.links
        if link.track_id in final
    ]


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
                **_frame_stats(segmenter, t, len(infos)),
            }
            for t in tracks
        ],
        "links": _links(segmenter, tracks),
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint is not None else None,
        "settings": {
            "infer": config_to_dict(segmenter.infer),
            "overlap": segmenter.overlap,
            "window": segmenter.num_frames,
            "device": str(segmenter.device),
            "precision": segmenter.precision.to_dict(),
            "model": config_to_dict(model.config),
            "outputs": _outputs_record(outputs),
        },
        "vistr_version": __version__,
    }
