"""Run the CLI on hostile and clumsy inputs; record each case's exit status and first line.

    python benchmarks/hostile_inputs.py               # writes benchmarks/results/hostile_inputs.{md,json}
    python benchmarks/hostile_inputs.py --subprocess  # each case in a fresh `python -m vistr_cli`

Every case runs `vistr ...` (through the Typer app, or in a fresh process) in a temporary folder; the
expectation is one clear line, a meaningful exit status and nothing left behind. Cases whose
files could run code check that the file they would create does not exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _segment_fakes import write_scene_video  # noqa: E402

from vistr_core.categories import CategoryMap  # noqa: E402
from vistr_core.checkpoint_io import write_checkpoint  # noqa: E402
from vistr_core.data.synthetic import generate_synthetic  # noqa: E402
from vistr_core.model import build_vistr  # noqa: E402
from vistr_core.model.loading import model_checkpoint_payload  # noqa: E402
from vistr_core.ops.masks import encode_mask  # noqa: E402
from vistr_core.presets import get_preset  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


class RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def build_inputs(tmp: Path) -> dict[str, Path]:
    """Dataset, video and checkpoints of every kind, written as their makers write them."""
    paths: dict[str, Path] = {"tmp": tmp, "marker": tmp / "PWNED"}
    generate_synthetic(tmp / "data", videos=3, valid_videos=1, frames=6, size=(48, 64), seed=5)
    paths["data"] = tmp / "data"
    paths["video"] = write_scene_video(tmp / "clip.mp4", 6, height=48, width=64)
    cfg = dataclasses.replace(get_preset("tiny").model, num_frames=2, num_instances=2)
    state = build_vistr(cfg).state_dict()
    args = argparse.Namespace(backbone=cfg.backbone, num_frames=2, hidden_dim=cfg.hidden_dim, lr=1e-4)
    reference = {"model": state, "optimizer": {}, "lr_scheduler": {}, "epoch": 3, "args": args}
    torch.save(reference, tmp / "reference.pth", _use_new_zipfile_serialization=False)
    wrong = argparse.Namespace(backbone="resnet101", num_frames=2, hidden_dim=384)
    torch.save(
        {**reference, "args": wrong}, tmp / "reference_wrong_args.pth", _use_new_zipfile_serialization=False
    )
    torch.save({"model": state}, tmp / "official_4q.pth")
    evil = RunsShell(paths["marker"])
    (tmp / "evil_raw.pkl").write_bytes(pickle.dumps({"model": state, "x": evil}))
    torch.save({"model": state, "x": evil}, tmp / "evil_zip.pth")
    torch.save({"model": state, "args": argparse.Namespace(x=[evil])}, tmp / "evil_legacy.pth",
               _use_new_zipfile_serialization=False)  # fmt: skip
    (tmp / "plain_raw.pkl").write_bytes(pickle.dumps({"a": 1}))
    data = (tmp / "reference.pth").read_bytes()
    (tmp / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp / "notes.txt").write_text("not a checkpoint\n")
    other = dataclasses.replace(get_preset("tiny").model, num_classes=2)
    payload = model_checkpoint_payload(
        build_vistr(other),
        data_config=get_preset("tiny").data,
        categories=CategoryMap((101, 102), ("zebra", "kite")),
    )
    write_checkpoint(payload, tmp / "other_categories.pt")
    (tmp / "a_file").write_text("mine\n")
    # MOTS sources
    for name, rle in (("mots_garbage", "%%%%garbage"), ("mots_unicode", "abcé"), ("mots_short", "0<")):
        folder = tmp / name / "instances_txt"
        folder.mkdir(parents=True)
        (folder / "seq.txt").write_text(f"0 1001 1 6 8 {rle}\n", encoding="utf-8")
        (tmp / name / "labels.txt").write_text("background\ncar\n")
    folder = tmp / "mots_class" / "instances_txt"
    folder.mkdir(parents=True)
    square = np.zeros((6, 8), bool)
    square[1:4, 2:5] = True
    car, other = (encode_mask(m)["counts"] for m in (square, ~square))
    (folder / "seq.txt").write_text(f"0 1001 1 6 8 {car}\n0 7001 7 6 8 {other}\n")
    (tmp / "mots_class" / "labels.txt").write_text("background\ncar\n")
    # a dataset with a corrupt frame, one without annotations, one with zero annotations
    import shutil

    for name in ("data_corrupt", "data_noann", "data_zero", "data_renamed"):
        shutil.copytree(tmp / "data", tmp / name)
    frame = sorted((tmp / "data_corrupt" / "train" / "JPEGImages").rglob("*.jpg"))[0]
    frame.write_bytes(frame.read_bytes()[:300])
    for name, value in (("data_noann", None), ("data_zero", [])):
        for split in ("train", "valid"):
            path = tmp / name / split / "instances.json"
            obj = json.loads(path.read_text())
            obj["annotations"] = value
            path.write_text(json.dumps(obj))
    path = tmp / "data_renamed" / "train" / "instances.json"
    obj = json.loads(path.read_text())
    obj["categories"][0]["name"] = "renamed"
    path.write_text(json.dumps(obj))
    results = [
        {"video_id": 1, "category_id": 1, "score": 0.9, "track_id": 2, "segmentations": [None] * 6}
    ] * 2
    (tmp / "dup_tracks.json").write_text(json.dumps(results))
    return paths


def cases(p: dict[str, Path]) -> list[tuple[str, list[str]]]:
    t, d = p["tmp"], str(p["data"])
    train = ["train", "--preset", "tiny", "--max-iters", "1", "--workers", "0", "--device", "cpu", "--quiet"]
    seg = ["segment", str(p["video"]), "--device", "cpu"]
    return [
        ("segment: reference-format checkpoint (args give T)", [*seg, "-o", f"{t}/s1", "-c", f"{t}/reference.pth"]),
        ("segment: reference args contradict the weights", [*seg, "-o", f"{t}/s2", "-c", f"{t}/reference_wrong_args.pth"]),
        ("segment: rerun with other settings", [*seg, "-o", f"{t}/s1", "-c", f"{t}/reference.pth", "--score-thr", "0.5"]),
        ("segment: official file, 4 queries, default T 36", [*seg, "-o", f"{t}/s3", "-c", f"{t}/official_4q.pth"]),
        ("segment: same with --num-frames 2", [*seg, "-o", f"{t}/s3", "-c", f"{t}/official_4q.pth", "--num-frames", "2"]),
        ("segment: raw pickle that runs code", [*seg, "-o", f"{t}/s4", "-c", f"{t}/evil_raw.pkl"]),
        ("segment: torch.save zip that runs code", [*seg, "-o", f"{t}/s4", "-c", f"{t}/evil_zip.pth"]),
        ("segment: legacy file, code inside args", [*seg, "-o", f"{t}/s4", "-c", f"{t}/evil_legacy.pth"]),
        ("segment: raw pickle without code", [*seg, "-o", f"{t}/s4", "-c", f"{t}/plain_raw.pkl"]),
        ("segment: truncated checkpoint", [*seg, "-o", f"{t}/s4", "-c", f"{t}/truncated.pth"]),
        ("segment: text file as checkpoint", [*seg, "-o", f"{t}/s4", "-c", f"{t}/notes.txt"]),
        ("segment: -o is a file", [*seg, "-o", f"{t}/a_file", "-c", f"{t}/reference.pth"]),
        ("segment: -o below a file", [*seg, "-o", f"{t}/a_file/out", "-c", f"{t}/reference.pth"]),
        ("eval: evil checkpoint", ["eval", "--data", d, "--checkpoint", f"{t}/evil_zip.pth", "--device", "cpu"]),
        ("eval: other categories", ["eval", "--data", d, "--checkpoint", f"{t}/other_categories.pt", "--device", "cpu"]),
        ("eval: split without annotations", ["eval", "--data", f"{t}/data_noann", "--checkpoint", f"{t}/reference.pth", "--device", "cpu"]),
        ("train: --init-from evil legacy file", [*train, "--data", d, "--out", f"{t}/r1", "--init-from", f"{t}/evil_legacy.pth"]),
        ("train: --init-from reference file", [*train, "--data", d, "--out", f"{t}/r2", "--init-from", f"{t}/reference_wrong_args.pth"]),
        ("train: corrupt JPEG (2 workers)", [*train, "--data", f"{t}/data_corrupt", "--out", f"{t}/r3", "--workers", "2"]),
        ("train: rerun after the corrupt JPEG", [*train, "--data", d, "--out", f"{t}/r3"]),
        ("train: zero annotations", [*train, "--data", f"{t}/data_zero", "--out", f"{t}/r4"]),
        ("train: --resume-from other categories", [*train, "--data", f"{t}/data_renamed", "--out", f"{t}/r5", "--resume-from", f"{t}/r3/last.pt"]),
        ("data check: corrupt JPEG", ["data", "check", f"{t}/data_corrupt"]),
        ("data convert: MOTS RLE %%%%garbage", ["data", "convert", f"{t}/mots_garbage", f"{t}/c1", "--to", "ytvis"]),
        ("data convert: MOTS RLE abcé", ["data", "convert", f"{t}/mots_unicode", f"{t}/c2", "--to", "ytvis"]),
        ("data convert: MOTS RLE short of H*W", ["data", "convert", f"{t}/mots_short", f"{t}/c3", "--to", "ytvis"]),
        ("data convert: MOTS class_id not in labels.txt", ["data", "convert", f"{t}/mots_class", f"{t}/c4", "--to", "ytvis"]),
        ("data check: that conversion", ["data", "check", f"{t}/c4", "--no-files"]),
        ("render: duplicate track_id", ["render", f"{t}/dup_tracks.json", "--video", str(p["video"]), "-o", f"{t}/o.mp4"]),
    ]  # fmt: skip


def run_case(argv: list[str], cwd: Path, *, subprocess_mode: bool) -> tuple[int, str, float]:
    """Exit status and first message line of `vistr ARGV`: in a fresh process, or (default, many
    times faster on a busy machine) through the Typer app in this process."""
    started = time.perf_counter()
    if subprocess_mode:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
        out = subprocess.run([sys.executable, "-m", "vistr_cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
        return out.returncode, first_line(out.stderr + "\n" + out.stdout), time.perf_counter() - started
    from typer.testing import CliRunner

    from vistr_cli.app import app

    previous = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, argv)
    finally:
        os.chdir(previous)
    return result.exit_code, first_line(result.output), time.perf_counter() - started


def first_line(text: str) -> str:
    """The first message line (error/warning/skipped/failed), else the first line that is not a
    progress bar."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("error:", "warning:", "skipped:", "failed:")):
            return line
    return next((ln for ln in lines if "━" not in ln), "")


def signal_case(p: dict[str, Path], sig: signal.Signals) -> tuple[int, str, float]:
    """`vistr train ... & sleep; kill -SIG $!; wait $!`: signal once the first step is logged."""
    out = p["tmp"] / f"sig_{sig.name}"
    argv = ["train", "--data", str(p["data"]), "--preset", "tiny", "--out", str(out), "--max-iters", "200",
            "--workers", "0", "--device", "cpu", "--quiet", "--log-every", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vistr_cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text().strip():
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.send_signal(sig)
    text, _ = proc.communicate(timeout=900)
    first = first_line(text)
    first += f"  [last.pt: {'yes' if (out / 'last.pt').is_file() else 'no'}]"
    return proc.returncode, first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subprocess", action="store_true", help="run every case in a fresh process")
    parser.add_argument(
        "--only",
        help="rerun the cases whose name contains one of these (comma-separated); replace their rows",
    )
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = build_inputs(tmp)
        for label, argv in cases(paths):
            if options.only and not any(part in label for part in options.only.split(",")):
                continue
            code, first, seconds = run_case(argv, tmp, subprocess_mode=options.subprocess)
            if "evil" in " ".join(argv):
                first += f"  [code ran: {'YES' if paths['marker'].exists() else 'no'}]"
            rows.append({"case": label, "command": "vistr " + " ".join(argv).replace(tmp_name, "T"), "exit": code,
                         "first_line": first.replace(tmp_name, "T"), "seconds": round(seconds, 1)})  # fmt: skip
            print(f"{code:4d}  {label}: {rows[-1]['first_line']}", flush=True)
        for sig in () if options.only else (signal.SIGTERM, signal.SIGINT):
            code, first, seconds = signal_case(paths, sig)
            rows.append({"case": f"train: {sig.name} after the first step", "command": f"vistr train ... & kill -{sig.name[3:]}",
                         "exit": code, "first_line": first.replace(tmp_name, "T"), "seconds": round(seconds, 1)})  # fmt: skip
            print(f"{code:4d}  {rows[-1]['case']}: {rows[-1]['first_line']}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if options.only:  # keep the other rows of the last full run, in their order
        fresh = {r["case"]: r for r in rows}
        rows = [fresh.pop(r["case"], r) for r in json.loads((RESULTS / "hostile_inputs.json").read_text())]
        rows += fresh.values()
    (RESULTS / "hostile_inputs.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| case | command (T = temp folder) | exit | first line of output |", "|---|---|---|---|"]
    for r in rows:
        cells = [r["case"], f"`{r['command']}`", str(r["exit"]), r["first_line"].replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    (RESULTS / "hostile_inputs.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
