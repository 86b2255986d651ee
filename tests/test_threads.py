"""The CPU thread policy for shared machines: the pure rule, the /proc readings, the governor, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_cli.openmp import SPIN_COUNT, openmp_defaults
from vistr_core.engine import threads as th
from vistr_core.engine.threads import CpuSample, ThreadGovernor, choose_threads, others_busy, thread_setting
from vistr_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("usable", "busy", "expected"),
    [
        (2, None, 2),  # not measurable: all usable CPUs
        (2, 0.0, 2),
        (2, 0.3, 2),  # bursts up to 0.3 of a core leave it ours
        (2, 0.31, 1),
        (2, 0.7, 1),  # a co-tenant squeezed by our spinning threads still takes its core
        (2, 1.0, 1),
        (2, 3.5, 1),  # never fewer than one
        (1, 0.9, 1),
        (16, 3.2, 13),
        (16, 0.0, 16),
    ],
)
def test_choose_threads(usable, busy, expected):
    assert choose_threads(usable, busy) == expected


def test_others_busy_subtracts_our_own_time():
    before = CpuSample(busy=1000, total=4000, own=300, cpus=2)
    # 200 ticks per CPU passed; the CPUs were busy 300 ticks, 100 of them ours -> 1 core of others
    after = CpuSample(busy=1300, total=4400, own=400, cpus=2)
    assert others_busy(before, after) == pytest.approx(1.0)
    # only our own work: nobody else
    assert others_busy(before, CpuSample(busy=1300, total=4400, own=600, cpus=2)) == 0.0
    assert others_busy(None, after) is None
    assert others_busy(after, after) is None  # no time passed


def test_read_sample_parses_proc_for_the_given_cpus(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  99 99 99 99 99 99 99 99 0 0\n"
        "cpu0 10 1 5 100 4 1 2 3 0 0\n"  # busy 10+1+5+1+2+3 = 22, idle 104
        "cpu1 20 0 10 50 0 0 0 0 0 0\n"  # busy 30, idle 50
        "cpu2 1000 0 0 0 0 0 0 0 0 0\n"  # not ours
        "intr 12345\nctxt 678\n"
    )
    self_stat = tmp_path / "self_stat"
    # a command name with spaces and parentheses; utime 7 and stime 5 are fields 14 and 15
    self_stat.write_text("4242 (python (x) y) R 1 2 3 4 5 6 7 8 9 10 7 5 0 0 20 0 3\n")
    monkeypatch.setattr(th, "_PROC_STAT", stat)
    monkeypatch.setattr(th, "_SELF_STAT", self_stat)
    assert th.read_sample({0, 1}) == CpuSample(busy=52, total=52 + 154, own=12, cpus=2)


def test_read_sample_is_none_without_proc(tmp_path, monkeypatch):
    monkeypatch.setattr(th, "_PROC_STAT", tmp_path / "missing")
    assert th.read_sample() is None


@pytest.mark.parametrize(("cpu_max", "expected"), [("max 100000\n", None), ("150000 100000\n", 2)])
def test_usable_cpus_honours_a_cgroup_quota(tmp_path, monkeypatch, cpu_max, expected):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    monkeypatch.setattr(th, "_CGROUP_CPU_MAX", path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert th.usable_cpus() == (expected or 4)


def test_thread_setting_explicit_wins_over_env():
    assert thread_setting(None, {}) == "auto"
    assert thread_setting(None, {"VISTR_THREADS": "auto"}) == "auto"
    assert thread_setting(None, {"VISTR_THREADS": " 3 "}) == 3
    assert thread_setting(2, {"VISTR_THREADS": "3"}) == 2


def test_thread_setting_errors_say_what_to_do():
    with pytest.raises(ConfigError) as err:
        thread_setting(None, {"VISTR_THREADS": "many"})
    assert str(err.value) == (
        "VISTR_THREADS='many' is not a positive number of threads; set e.g. VISTR_THREADS=2, or VISTR_THREADS=auto"
    )
    with pytest.raises(ConfigError, match=r"^--threads 0: give a positive number of threads"):
        thread_setting(0, {})


def _fake_proc(monkeypatch, others: list[float], cpus: int = 2):
    """read_sample returns samples in which other processes used ``others[i]`` cores in interval i."""
    state = {"busy": 0, "total": 0, "i": 0}

    def read_sample(_cpus=None):
        i = state["i"]
        state["i"] += 1
        if i:  # 100 ticks per CPU per interval
            state["busy"] += round(others[min(i - 1, len(others) - 1)] * 100)
            state["total"] += 100 * cpus
        return CpuSample(busy=state["busy"], total=state["total"], own=0, cpus=cpus)

    monkeypatch.setattr(th, "read_sample", read_sample)
    monkeypatch.setattr(th, "usable_cpus", lambda: cpus)


def test_governor_follows_co_tenants_and_restores(monkeypatch, one_torch_thread):
    torch.set_num_threads(2)
    _fake_proc(monkeypatch, [0.0, 1.0, 1.0, 0.1])
    with ThreadGovernor("auto", recheck_seconds=0, probe_seconds=0) as governor:
        assert torch.get_num_threads() == 2  # quiet at the start
        assert governor.update() == 1 and torch.get_num_threads() == 1  # a co-tenant arrived
        assert governor.update() == 1
        assert governor.update() == 2  # it left
        assert governor.summary() == {"setting": "auto", "used": [2, 1]}
    assert torch.get_num_threads() == 2


def test_governor_rechecks_only_after_the_interval(monkeypatch, one_torch_thread):
    torch.set_num_threads(2)
    _fake_proc(monkeypatch, [0.0, 1.0])
    with ThreadGovernor("auto", recheck_seconds=3600, probe_seconds=0) as governor:
        assert governor.update() == 2  # the co-tenant is not measured before an hour has passed
        assert governor.history == [2]


def test_governor_never_exceeds_torch_default(monkeypatch, one_torch_thread):
    """OMP_NUM_THREADS / torch.set_num_threads set the ceiling; auto only ever goes lower."""
    _fake_proc(monkeypatch, [0.0], cpus=8)
    with ThreadGovernor("auto", probe_seconds=0):
        assert torch.get_num_threads() == 1


def test_fixed_and_untouched_settings(monkeypatch, one_torch_thread):
    _fake_proc(monkeypatch, [1.0, 1.0])
    with ThreadGovernor(3, recheck_seconds=0) as governor:
        assert torch.get_num_threads() == 3
        assert governor.update() == 3  # held, whatever the load
    assert torch.get_num_threads() == 1
    with ThreadGovernor(None) as governor:
        torch.set_num_threads(2)
        assert governor.update() == 2  # left alone
    assert torch.get_num_threads() == 2
    with pytest.raises(ConfigError):
        ThreadGovernor(0)


def test_openmp_defaults_respect_the_users_choice():
    assert openmp_defaults({}) == {"GOMP_SPINCOUNT": SPIN_COUNT}
    assert openmp_defaults({"OMP_WAIT_POLICY": "ACTIVE"}) == {}
    assert openmp_defaults({"GOMP_SPINCOUNT": "300000"}) == {}


def test_cli_sets_openmp_environment_before_torch_loads():
    code = (
        "import sys, vistr_cli, os; assert 'torch' not in sys.modules; "
        "import torch; print(os.environ.get('GOMP_SPINCOUNT'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == SPIN_COUNT
    env["GOMP_SPINCOUNT"] = "123"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "123"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [([], {}, "auto"), (["--threads", "1"], {"VISTR_THREADS": "2"}, 1), ([], {"VISTR_THREADS": "2"}, 2)],
)
def test_segment_and_train_forward_the_thread_setting(tmp_path, monkeypatch, args, env, expected):
    from vistr_core.engine import trainer
    from vistr_core.inference import segment as segment_module
    from vistr_core.inference.segment import SegmentSummary

    seen = {}
    monkeypatch.setattr(  # the command imports segment_videos when it runs
        segment_module,
        "segment_videos",
        lambda *a, **kw: seen.update(segment=kw["threads"]) or SegmentSummary(),
    )
    monkeypatch.setattr(
        trainer,
        "train",
        lambda *a, **kw: seen.update(train=kw["threads"]) or (_ for _ in ()).throw(ConfigError("stop")),
    )
    monkeypatch.delenv("VISTR_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    CliRunner().invoke(app, ["segment", str(tmp_path), "-o", str(tmp_path / "out"), "-c", str(ckpt), *args])
    result = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *args]
    )
    assert "stop" in result.output
    assert seen == {"segment": expected, "train": expected}


def test_cli_reports_a_bad_thread_setting_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("VISTR_THREADS", "lots")
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "VISTR_THREADS='lots' is not a positive number of threads" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_segment_runs_with_the_fixed_thread_count_and_records_it(tmp_path, one_torch_thread):
    """End to end through the core: the model computes with the asked count; meta.json says so."""
    from _segment_fakes import ColorSlotModel, write_scene_video

    from vistr_core.inference.segment import segment_videos

    seen: list[int] = []

    class Spy(ColorSlotModel):
        def forward(self, *a, **kw):
            seen.append(torch.get_num_threads())
            return super().forward(*a, **kw)

    video = write_scene_video(tmp_path / "clip.mp4", 12)
    summary = segment_videos([video], tmp_path / "out", model=Spy(), threads=2)
    assert summary.ok and seen and set(seen) == {2}
    meta = json.loads((tmp_path / "out" / "clip" / "meta.json").read_text())
    assert meta["settings"]["threads"] == {"setting": 2, "used": [2]}
    assert torch.get_num_threads() == 1  # restored after the command
