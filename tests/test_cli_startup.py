"""`vistr` answers without loading what it does not need (fresh processes, `sys.modules` inspected).

`--help`, `--version`, every `X --help` and usage errors import none of torch, torchvision, OpenCV,
PyAV or SciPy; commands that need no model (render, eval --gt/--results, data ...) do their work
without torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "cv2", "av", "scipy")
# Runs `vistr ARGS` in this process, then records its exit status and the heavy modules it loaded.
PROBE = """
import json, runpy, sys
report, sys.argv = sys.argv[1], ["vistr", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("vistr_cli", run_name="__main__")
except SystemExit as exit:
    code = exit.code
with open(report, "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def run_vistr(args: list[str], tmp_path: Path) -> tuple[int, set[str], str]:
    """Exit status, top-level names of every module loaded, and stderr of `vistr ARGS`."""
    report = tmp_path / "probe.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert report.exists(), done.stderr[-3000:]
    probe = json.loads(report.read_text())
    return probe["code"], {name.split(".")[0] for name in probe["modules"]}, done.stderr


NO_WORK = [
    (["--help"], 0),
    (["--version"], 0),
    (["segment", "--help"], 0),
    (["train", "--help"], 0),
    (["eval", "--help"], 0),
    (["render", "--help"], 0),
    (["data", "--help"], 0),
    (["data", "synth", "--help"], 0),
    (["data", "check", "--help"], 0),
    (["data", "split", "--help"], 0),
    (["data", "convert", "--help"], 0),
    (["rendr"], 2),  # a typo
    (["segment"], 2),  # a missing argument
    (["segment", "clip.mp4", "-o", "out"], 2),  # no --checkpoint
    (["train", "--out", "run"], 2),  # no --data
    (["eval"], 1),  # nothing to score
    (["eval", "--gt", "gt.json"], 1),  # --results missing
    (["render", "results.json", "-o", "o.mp4", "--start", "5", "--end", "2"], 1),
    (["render", "results.json", "-o", "o.mp4", "--alpha", "2"], 2),  # out of range
]


@pytest.mark.parametrize(("args", "code"), NO_WORK, ids=[" ".join(a) for a, _ in NO_WORK])
def test_help_version_and_usage_errors_load_no_heavy_module(args, code, tmp_path):
    status, modules, stderr = run_vistr(args, tmp_path)
    assert status == code, stderr
    assert "Traceback" not in stderr
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_version_prints_the_package_version(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "vistr_cli", "--version"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    import vistr_core

    assert done.stdout.strip() == f"vistr {vistr_core.__version__}"


def test_import_vistr_core_alone_is_light(tmp_path):
    code = "import sys, vistr_core; print(sorted({m.split('.')[0] for m in sys.modules}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    loaded = set(json.loads(done.stdout.replace("'", '"')))
    assert loaded.isdisjoint((*HEAVY, "numpy", "typer", "rich")), done.stdout


def test_commands_without_a_model_work_without_torch(tmp_path):
    """data synth/check/split/convert, eval --gt/--results and render do real work, torch-free."""
    data, results = tmp_path / "shapes", tmp_path / "results.json"
    synth = ["data", "synth", "--out", str(data), "--videos", "2", "--valid-videos", "1"]
    commands = [
        [*synth, "--frames", "4", "--size", "32x48"],
        ["data", "check", str(data)],
        ["data", "split", str(data), "--valid-fraction", "0.5"],
        ["data", "convert", str(data), str(tmp_path / "mots"), "--to", "mots"],
        ["eval", "--gt", str(data / "valid" / "instances.json"), "--results", str(results)],
        [
            "render",
            str(results),
            "--gt",
            str(data / "valid" / "instances.json"),
            "-o",
            str(tmp_path / "o.mp4"),
        ],
    ]
    for args in commands:
        if args[0] == "eval":  # the ground truth itself, as a results list
            gt = json.loads((data / "valid" / "instances.json").read_text())
            keys = ("video_id", "category_id", "segmentations")
            results.write_text(
                json.dumps([{**{k: a[k] for k in keys}, "score": 0.9} for a in gt["annotations"]])
            )
        status, modules, stderr = run_vistr(args, tmp_path)
        assert status == 0, (args, stderr)
        assert "torch" not in modules and "torchvision" not in modules, args
    assert (tmp_path / "o.mp4").stat().st_size > 0
    assert (data / "annotations" / "split_valid.json").exists()
