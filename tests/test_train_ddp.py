"""Data parallelism: two gloo processes on the CPU equal one process on the combined batch."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_trainer import micro_preset  # tests/ is on sys.path under pytest
from torch.nn.parallel import DistributedDataParallel

from vistr_core.config import TrainConfig
from vistr_core.data.clip import make_clip_targets
from vistr_core.losses import build_criterion
from vistr_core.model import build_vistr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_clips():
    """Two clips of different content (same size), with instances present in some frames only."""
    g = torch.Generator().manual_seed(7)
    config = micro_preset().model
    t = config.num_frames
    clips = []
    for b in range(2):
        frames = torch.randn(t, 3, 40, 48, generator=g)
        masks = torch.zeros(2 + b, t, 40, 48, dtype=torch.bool)
        for i in range(masks.shape[0]):
            y, x = 4 + 8 * i, 3 + 10 * i
            masks[i, : t - i, y : y + 12, x : x + 14] = True
        target = make_clip_targets(
            masks, torch.tensor([0, 2, 1][: 2 + b]), torch.arange(2 + b), video_id=b,
            frame_indices=torch.arange(t), orig_size=(40, 48),
        )  # fmt: skip
        clips.append((frames, target))
    return clips


def model_and_criterion():
    config = micro_preset().model
    torch.manual_seed(0)
    model = build_vistr(dataclasses.replace(config, num_classes=3)).train()
    return model, build_criterion(3, TrainConfig())


def gradients(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model, criterion = model_and_criterion()
        ddp = DistributedDataParallel(model)
        frames, target = two_clips()[rank]
        losses = criterion(ddp(frames[None]), [target])
        losses["loss"].backward()
        if rank == 0:
            torch.save(gradients(model), out)
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_equal_single_process_on_combined_batch(tmp_path):
    out = tmp_path / "ddp_grads.pt"
    mp.spawn(_ddp_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    ddp_grads = torch.load(out, weights_only=True)

    model, criterion = model_and_criterion()
    clips = two_clips()
    frames = torch.stack([f for f, _ in clips])
    criterion(model(frames), [t for _, t in clips])["loss"].backward()
    single = gradients(model)
    assert single.keys() == ddp_grads.keys()
    for name, grad in single.items():
        assert torch.allclose(ddp_grads[name], grad, rtol=1e-4, atol=1e-6), name


def _train_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    from vistr_core.engine.trainer import train

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    train(
        data,
        preset=micro_preset(),
        out_dir=out,
        overrides={"max_iters": 2, "workers": 0, "batch_size": 1},
        device="cpu",
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from vistr_core.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, videos=4, valid_videos=1, frames=6, size=(48, 64), seed=3)
    return root


@pytest.mark.slow
def test_torchrun_style_training_equals_single_process(dataset, tmp_path):
    """RANK/WORLD_SIZE in the environment (as torchrun sets them) make train() data-parallel:
    2 ranks x batch 1 take the same steps as 1 process x batch 2."""
    from vistr_core.checkpoint_io import read_checkpoint
    from vistr_core.engine.trainer import train

    mp.spawn(_train_worker, args=(2, free_port(), str(dataset), str(tmp_path / "ddp")), nprocs=2, join=True)
    single = train(
        dataset, preset=micro_preset(), out_dir=tmp_path / "one",
        overrides={"max_iters": 2, "workers": 0, "batch_size": 2}, device="cpu",
    )  # fmt: skip
    ddp_ckpt = read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ddp_ckpt["world_size"] == 2 and len(ddp_ckpt["rng"]) == 2
    one = read_checkpoint(single.last_checkpoint)["model"]
    for name, value in one.items():
        assert torch.allclose(ddp_ckpt["model"][name], value, rtol=1e-4, atol=1e-5), name
