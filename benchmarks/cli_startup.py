"""How long `vistr` takes to answer when it does no work: `--help`, `--version`, `X --help`, usage errors.

Each case runs ``python -m vistr_cli ...`` in a fresh process (wall time, median of repeats, cases
alternated so a busy spell hits them all alike) and once more in a process that reports which heavy
packages (torch, torchvision, cv2, av, scipy) the command imported. Then ``python -X importtime``
of ``import vistr_cli.app`` is summarised per top-level package (the sum of each package's
modules' own import times, so the figures add up to the whole).

    python benchmarks/cli_startup.py [--repeats 5] [--root /path/to/a/checkout] [--tag after]

``--root`` measures another checkout (e.g. the commit before a change) with this interpreter.
Prints the figures and writes benchmarks/results/cli_startup[_TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "help": ["--help"],
    "version": ["--version"],
    "segment_help": ["segment", "--help"],
    "render_help": ["render", "--help"],
    "data_check_help": ["data", "check", "--help"],
    "usage_error": ["segment"],
    "typo": ["rendr"],
}
HEAVY = ("torch", "torchvision", "cv2", "av", "scipy", "numpy", "pycocotools", "PIL")
PROBE = """
import runpy, sys
sys.argv = ["vistr", *sys.argv[1:]]
try:
    runpy.run_module("vistr_cli", run_name="__main__")
except SystemExit:
    pass
print("\\nHEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "100"}


def _run(args: list[str], root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vistr_cli", *args], env=_env(root), cwd=root, capture_output=True)
    return time.perf_counter() - start


def heavy_imports(args: list[str], root: Path) -> list[str]:
    """The heavy packages a `vistr ARGS` process has imported by the time it exits."""
    code = PROBE.format(heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=_env(root), cwd=root, capture_output=True, text=True
    ).stdout
    line = out.rsplit("HEAVY=", 1)[-1].strip()
    return [m for m in line.split(",") if m]


def import_summary(root: Path, module: str = "vistr_cli.app") -> dict[str, float]:
    """Milliseconds of ``import module`` spent in each top-level package (the sum of its modules'
    own times from -X importtime, so the figures add up to the whole)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=_env(root),
        cwd=root,  # python -c puts the working directory first on sys.path
        capture_output=True,
        text=True,
    ).stderr
    per_package: dict[str, float] = {}
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        top = name.strip().split(".")[0]
        per_package[top] = per_package.get(top, 0.0) + int(own) / 1000
    return dict(sorted(per_package.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--tag", default="", help="Suffix of the JSON file name (e.g. before, after).")
    args = parser.parse_args()
    root = args.root.resolve()
    load_before = [round(v, 2) for v in os.getloadavg()]
    walls: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, argv in CASES.items():
            walls[name].append(_run(argv, root))
    results = {}
    for name, argv in CASES.items():
        results[name] = {
            "command": "vistr " + " ".join(argv),
            "wall_s_median": round(statistics.median(walls[name]), 3),
            "wall_s_min": round(min(walls[name]), 3),
            "heavy_modules_imported": heavy_imports(argv, root),
        }
        print(f"{results[name]['command']:>26}: {results[name]}", flush=True)
    python_only = statistics.median(_time_python() for _ in range(args.repeats))
    summary = import_summary(root)
    print("import vistr_cli.app, ms per top-level package:")
    for package, ms in list(summary.items())[:12]:
        print(f"  {package:>20}: {ms:8.1f}")
    report = {
        "root": str(root),
        "repeats": args.repeats,
        "python_startup_s_median": round(python_only, 3),
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "results": results,
        "importtime_ms_per_package": {k: round(v, 1) for k, v in summary.items()},
    }
    name = f"cli_startup_{args.tag}.json" if args.tag else "cli_startup.json"
    path = Path(__file__).parent / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def _time_python() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
