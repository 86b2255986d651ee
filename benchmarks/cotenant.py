"""Forward and training-step time beside CPU-bound co-tenants, with and without vistr's thread policy.

For every mode and co-tenant count it starts that many busy processes (pure-Python spin loops, or
single-threaded numpy matmuls), then times the work in a fresh child process (OpenMP reads its
environment once, when torch loads):

- ``forward``: the model in inference mode on one clip;
- ``step``: forward + the paper's losses + backward + clip-norm + AdamW, batch 1, fp32.

Modes: ``main`` = torch's defaults, what git main did (one thread per core, OpenMP's default
spin-waiting); ``vistr`` = what the CLI now does (:func:`vistr_cli.openmp.openmp_defaults` in the
environment, :class:`vistr_core.engine.threads.ThreadGovernor` updated after every step/forward);
``threads=N`` = a fixed count; any mode may add ``+KEY=VALUE`` environment settings, e.g.
``main+OMP_WAIT_POLICY=PASSIVE``.

    python benchmarks/cotenant.py                                   # r50 T=6 192x256, 0 and 1 co-tenant
    python benchmarks/cotenant.py --model tiny --repeat 2 --cotenants 0 1 2
    python benchmarks/cotenant.py --modes main vistr threads=1 main+OMP_WAIT_POLICY=PASSIVE

On a machine other people are using, ``--boost`` (root) emulates a quiet one: the benchmark, its
children and its co-tenants share a scheduler group at nice -20, so the others' work barely
competes; the JSON records the group's nice at the end, in case something else reset it.

Prints a table and writes benchmarks/results/cotenant.json with the CPU model, its SIMD flags, the
usable CPUs and the load average before and after every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_info, write_report  # noqa: E402

# Each co-tenant checks every ~0.1 s that the benchmark still runs, so none outlives it.
SPINNERS = {
    "python": "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6):\n        pass",
    "numpy": "import os\nimport numpy as np\na = np.random.rand(512, 512)\nparent = os.getppid()\n"
    "while os.getppid() == parent:\n    for _ in range(10):\n        a @ a",
}
# --------------------------------------------------------------------------------------------------
# The child: build the model and time the work under one mode


def _apply_mode(mode: str):
    """Set torch's threads for ``mode`` (the environment was set by the parent); a governor or None."""
    import torch

    from vistr_core.engine.threads import ThreadGovernor

    base = mode.split("+")[0]
    if base == "vistr":
        return ThreadGovernor().__enter__()
    if base.startswith("threads="):
        torch.set_num_threads(int(base.removeprefix("threads=")))
    return None


def _r50_small():
    from vistr_core.presets import get_preset

    cfg = get_preset("vistr_r50").model
    return dataclasses.replace(cfg, num_frames=6, num_instances=10), (192, 256)


def _model_config(name: str):
    from vistr_core.presets import get_preset

    if name == "r50":
        return _r50_small()
    return get_preset("tiny").model, (128, 160)


def _targets(frames: int, size: tuple[int, int], num_classes: int):
    """Two moving rectangles: labels, boxes, masks over the clip (a ClipTargets)."""
    import torch

    from vistr_core.data.clip import ClipTargets

    h, w = size
    masks = torch.zeros(2, frames, h, w, dtype=torch.bool)
    boxes = torch.zeros(2, frames, 4)
    for t in range(frames):
        for i, (x, y) in enumerate(((w // 8 + 4 * t, h // 4), (w // 2, h // 8 + 3 * t))):
            bw, bh = w // 4, h // 3
            masks[i, t, y : y + bh, x : x + bw] = True
            boxes[i, t] = torch.tensor([(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h])
    return ClipTargets(
        labels=torch.arange(2) % num_classes, boxes=boxes, masks=masks, valid=torch.ones(2, frames, dtype=torch.bool),
        video_id=0, frame_indices=torch.arange(frames), size=size, orig_size=size,
        instance_ids=torch.tensor([1, 2]),
    )  # fmt: skip


def child(model_name: str, work: str, mode: str, repeat: int) -> dict:
    import torch

    from vistr_core.config import TrainConfig
    from vistr_core.engine.optim import build_optimizer
    from vistr_core.losses import build_criterion
    from vistr_core.model import build_vistr
    from vistr_core.model.cpu_memory import keep_freed_memory

    keep_freed_memory()  # as the CLI does, in both modes
    governor = _apply_mode(mode)
    cfg, size = _model_config(model_name)
    torch.manual_seed(0)
    model = build_vistr(cfg)
    clip = torch.randn(1, cfg.num_frames, 3, *size)
    if work == "forward":
        model.eval()

        def run() -> None:
            with torch.inference_mode():
                model(clip)
    else:
        config = TrainConfig()
        criterion = build_criterion(cfg.num_classes, config)
        optimizer = build_optimizer(model.train(), config)
        targets = [_targets(cfg.num_frames, size, cfg.num_classes)]

        def run() -> None:
            losses = criterion(model(clip), targets)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_max_norm)
            optimizer.step()

    walls, cpus, threads = [], [], []
    for i in range(repeat + 1):  # the first run warms up allocator and kernels
        if governor is not None:
            governor.update()
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        if i:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            threads.append(torch.get_num_threads())
    return {
        "seconds": walls,
        "process_cpu_seconds": cpus,
        "threads": threads,
        "others_busy_cores": None if governor is None else governor.others_busy,
        "omp_env": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_", "KMP_"))},
    }


# --------------------------------------------------------------------------------------------------
# The parent: co-tenants, child processes, the report


def _mode_env(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "VISTR_THREADS"))}
    base, *extra = mode.split("+")
    if base == "vistr":
        from vistr_cli.openmp import openmp_defaults

        env.update(openmp_defaults(env))
    for item in extra:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _start_cotenants(count: int, kind: str) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", SPINNERS[kind]], env=env) for _ in range(count)]
    time.sleep(1.0 if procs else 0.0)  # let them reach their loops
    return procs


def boost() -> bool:
    """A new session (so a new scheduler autogroup) at nice -20; False where not permitted.

    With autogroups, CPU time is shared fairly between sessions first, so nice inside one session
    would not help; the session's own autogroup nice does.
    """
    try:
        if os.getsid(0) != os.getpid():
            os.setsid()
        Path(f"/proc/{os.getpid()}/autogroup").write_text("-20")
    except OSError as err:
        print(f"--boost not applied ({err}); figures are at normal priority", file=sys.stderr)
        return False
    return True


def _autogroup() -> str | None:
    """This session's scheduler group and its nice at the end (another tool may have changed it)."""
    try:
        return Path(f"/proc/{os.getpid()}/autogroup").read_text().strip()
    except OSError:
        return None


def measure(model: str, work: str, mode: str, cotenants: int, args: argparse.Namespace) -> dict:
    procs = _start_cotenants(cotenants, args.spinner)
    load_before = os.getloadavg()
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", model, work, mode, str(args.repeat)],
            env=_mode_env(mode), capture_output=True, text=True, timeout=args.timeout, check=True,
        )  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        row = {"seconds": [], "timed_out_after_s": args.timeout}
    except subprocess.CalledProcessError as err:
        raise SystemExit(f"{mode} {work} failed:\n{err.stderr}") from None
    finally:
        for p in procs:
            p.kill()
            p.wait()
    row.update(model=model, work=work, mode=mode, cotenants=cotenants, spinner=args.spinner)
    row["load_average_before_after"] = [load_before[0], os.getloadavg()[0]]
    row["median_seconds"] = statistics.median(row["seconds"]) if row["seconds"] else None
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model, work, mode, repeat = sys.argv[2:6]
        print(json.dumps(child(model, work, mode, int(repeat))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["r50", "tiny"], default="r50", help="r50 = T=6, n=10, 192x256")
    parser.add_argument("--work", nargs="+", choices=["forward", "step"], default=["forward", "step"])
    parser.add_argument("--modes", nargs="+", default=["main", "vistr"])
    parser.add_argument("--cotenants", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--spinner", choices=sorted(SPINNERS), default="python")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up (median)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per child before giving up")
    parser.add_argument(
        "--boost",
        action="store_true",
        help="root only: run in an own session whose autogroup has nice -20, so other users' work "
        "barely competes (a quiet machine, emulated; our co-tenants share the same priority)",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cotenant.json"))
    args = parser.parse_args()
    boosted = boost() if args.boost else False
    rows = []
    for work in args.work:
        for cotenants in args.cotenants:
            for mode in args.modes:  # modes side by side, so a change in the machine's load hits both
                row = measure(args.model, work, mode, cotenants, args)
                rows.append(row)
                median = "timeout" if row["median_seconds"] is None else f"{row['median_seconds']:.2f} s"
                print(
                    f"{args.model} {work:7s} cotenants {cotenants}  {mode:28s} {median:>9s}  "
                    f"threads {row.get('threads')}  load {row['load_average_before_after'][0]:.2f}",
                    flush=True,
                )
    import torch

    report = {
        "benchmark": "cotenant",
        "cpu": cpu_info(),
        "torch": torch.__version__,
        "boosted": boosted,
        "autogroup_at_end": _autogroup(),
        "rows": rows,
    }
    write_report(Path(args.out), report)


if __name__ == "__main__":
    main()
