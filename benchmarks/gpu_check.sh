#!/usr/bin/env bash
# The CUDA check: on a machine with one CUDA GPU, in <= 8 minutes, writes ONE JSON with
#   1. `pytest -m gpu` (tests/test_gpu.py + the trainer's CUDA test): CUDA vs CPU on the parity
#      fixture (fp32 within 1e-3; bf16/fp16 tolerances in tests/test_gpu.py), torchvision's CUDA
#      deformable conv vs our CPU one, AMP training steps in bf16 and fp16 (grad scaler), fp32 CUDA
#      loss vs CPU, single-process NCCL DDP, cuda:N selection, `vistr segment --device cuda`;
#   2. R50 forward throughput at 36x300x540 in fp32, TF32 and bf16 with --window-batch 1 and 4
#      (data loading excluded; the paper: 69.9 frames/s on a V100).
#
#   bash benchmarks/gpu_check.sh [OUT.json]      (default benchmarks/results/gpu_check.json)
#
# Needs only the project: the code runs from this checkout (PYTHONPATH); if the Python found
# ($PYTHON, else .venv/bin/python, else python3) lacks a dependency, `pip install -e .` installs
# the project's own list. Without a CUDA device it says so, writes nothing and exits 2.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-benchmarks/results/gpu_check.json}
PY=${PYTHON:-}
[ -z "$PY" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
[ -z "$PY" ] && PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
log() { printf '[gpu_check %3ss] %s\n' "$(($(date +%s) - START))" "$*" >&2; }

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "gpu_check: $PY has no torch; set PYTHON=/path/to/python with torch (CUDA build)" >&2
    exit 2
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device is present (torch.cuda.is_available() is False with torch" \
        "$("$PY" -c 'import torch; print(torch.__version__)')); nothing was run" >&2
    exit 2
fi
MISSING=$("$PY" - <<'EOF'
import importlib.util
mods = ["torchvision", "typer", "rich", "cv2", "av", "numpy", "scipy", "pycocotools", "PIL", "pytest"]
print(" ".join(m for m in mods if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$MISSING" ]; then
    log "missing: $MISSING; installing the project's dependencies (pip install -e .[dev])"
    "$PY" -m pip install -q -e ".[dev]" >&2 || "$PY" -m pip install -q -e . pytest >&2 || {
        echo "gpu_check: cannot install $MISSING" >&2
        exit 2
    }
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
log "pytest -m gpu on $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"
timeout 300 "$PY" -m pytest -q -m gpu -p no:cacheprovider --junitxml "$TMP/pytest.xml" \
    tests/test_gpu.py tests/test_trainer.py >"$TMP/pytest.log" 2>&1
PYTEST_RC=$?
tail -n 5 "$TMP/pytest.log" >&2

log "R50 forward throughput, 36x300x540, fp32 / tf32 / bf16, window batch 1 and 4"
timeout 240 "$PY" benchmarks/model_forward.py --models vistr_r50 --frames 36 --size 300x540 --device cuda \
    --precision fp32 tf32 bf16 --window-batch 1 4 --repeat 5 --out "$TMP/forward.json" >"$TMP/forward.log" 2>&1
FORWARD_RC=$?
tail -n 8 "$TMP/forward.log" >&2

mkdir -p "$(dirname "$OUT")"
"$PY" - "$TMP" "$OUT" "$PYTEST_RC" "$FORWARD_RC" "$(($(date +%s) - START))" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
import torch

tmp, out, pytest_rc, forward_rc, seconds = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:])
tests = []
if (tmp / "pytest.xml").exists():
    for case in ET.parse(tmp / "pytest.xml").getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        detail = next((c.get("message", "")[:500] for c in case if c.tag in ("failure", "error", "skipped")), "")
        tests.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time", 0)), "detail": detail})
forward = json.loads((tmp / "forward.json").read_text()) if (tmp / "forward.json").exists() else None
rows = [{k: r[k] for k in ("precision", "window_batch", "seconds_per_clip", "frames_per_second",
                           "peak_memory_mb", "speedup_over_fp32") if k in r}
        for r in (forward or {}).get("results", [])]
report = {
    "benchmark": "gpu_check",
    "gpu": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "bf16_supported": torch.cuda.is_bf16_supported(),
    "seconds": seconds,
    "pytest_exit_code": pytest_rc,
    "tests_passed": sum(t["outcome"] == "passed" for t in tests),
    "tests_failed": sum(t["outcome"] in ("failure", "error") for t in tests),
    "tests": tests,
    "pytest_log_tail": (tmp / "pytest.log").read_text()[-3000:] if (tmp / "pytest.log").exists() else "",
    "forward_exit_code": forward_rc,
    "forward_r50_36x300x540": rows,
    "forward_raw": forward,
    "paper_v100_frames_per_second": 69.9,
}
out.write_text(json.dumps(report, indent=2) + "\n")
print(f"wrote {out}: {report['tests_passed']} tests passed, {report['tests_failed']} failed")
for r in rows:
    print(f"  R50 {r['precision']:5s} B={r['window_batch']}: {r['frames_per_second']:.1f} frames/s")
EOF
log "done"
[ "$PYTEST_RC" -eq 0 ] && [ "$FORWARD_RC" -eq 0 ]
