"""Device selection and numeric precision, kept in one place so every command behaves alike.

Precision is chosen once per run from what the device has (:func:`resolve_precision` for
inference, :func:`training_precision` for ``--amp`` training) and recorded with its reason.
"fp32" means no autocast; "bf16"/"fp16" run the model under ``torch.autocast`` (convolutions
and matrix products in the low dtype, reductions and losses in fp32).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import PRECISIONS
from ..errors import ConfigError, DeviceError

#: ``auto`` picks bf16 on CPUs with native bf16 while bf16 costs at most 0.01 AP on the
#: quickstart's held-out split; set False (auto keeps fp32, and says why) if it costs more.
#: Measured: benchmarks/precision_accuracy.py, README "Precision (bf16, fp16)".
AUTO_CPU_BF16 = True

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses: ``name`` is "fp32", "bf16" or "fp16"; ``reason`` says why."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype; None for fp32 (no autocast)."""
        return _DTYPES[self.name]

    def to_dict(self) -> dict[str, str]:
        return {"precision": self.name, "reason": self.reason}


def select_device(spec: str = "auto") -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` to a device this machine has.

    ``auto`` picks CUDA when present, else CPU. An explicit device that is missing raises
    :class:`DeviceError` naming what is available instead of failing later inside a kernel.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec}: no CUDA device is available here; use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {spec}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceError(f"--device {spec}: MPS is not available here; use --device cpu or auto")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device


def cpu_bf16_support(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """This CPU's native bf16 instructions: ``"AMX"``, ``"AVX512-BF16"`` or None.

    Read from the kernel's CPU flags (``amx_bf16``, ``avx512_bf16``) or, where ``cpuinfo`` cannot
    be read (not Linux), from torch's dispatch level. oneDNN runs bf16 convolutions and matrix
    products natively with either; without them bf16 is emulated and slower than fp32.
    """
    try:
        flags = set(Path(cpuinfo).read_text().split())
    except OSError:
        capability = torch.backends.cpu.get_cpu_capability().upper()
        flags = {"amx_bf16"} if "AMX" in capability else {"avx512_bf16"} if "BF16" in capability else set()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def resolve_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """The inference precision for ``requested`` ("auto", "fp32", "bf16", "fp16") on ``device``.

    ``auto``: bf16 on CUDA devices that support it and on CPUs with native bf16 (AMX or
    AVX512-BF16), fp32 elsewhere. An explicit choice the device cannot run raises
    :class:`DeviceError`; bf16 on a CPU without native support runs (emulated) and says so.
    """
    if requested not in PRECISIONS:
        raise DeviceError(f"unknown precision {requested!r}; use {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return PrecisionChoice("fp32", "requested")
    if device.type == "cuda":
        return _cuda_precision(requested, device)
    if requested == "fp16":
        raise DeviceError(f"--precision fp16 needs a CUDA device (this is {device.type}); use bf16 or fp32")
    if device.type != "cpu":
        if requested == "auto":
            return PrecisionChoice("fp32", f"auto: no mixed precision on {device.type}")
        raise DeviceError(f"--precision {requested} is not supported on {device.type}; use fp32")
    native = cpu_bf16_support()
    if requested == "bf16":
        return PrecisionChoice(
            "bf16", f"requested; CPU {native}" if native else "requested; emulated on this CPU"
        )
    if native is None:
        return PrecisionChoice("fp32", "auto: this CPU has no native bf16 (AMX or AVX512-BF16)")
    if not AUTO_CPU_BF16:
        return PrecisionChoice("fp32", "auto: bf16 accuracy on CPU not accepted (see README, Precision)")
    return PrecisionChoice("bf16", f"auto: CPU with native bf16 ({native})")


def _cuda_precision(requested: str, device: torch.device) -> PrecisionChoice:
    bf16 = torch.cuda.is_bf16_supported()
    if requested == "fp16":
        return PrecisionChoice("fp16", "requested")
    if requested == "bf16":
        if not bf16:
            raise DeviceError(f"--precision bf16: {device} has no bf16 support; use fp16 or fp32")
        return PrecisionChoice("bf16", "requested")
    if bf16:
        return PrecisionChoice("bf16", "auto: CUDA device with bf16")
    return PrecisionChoice("fp32", "auto: this CUDA device has no bf16 (use --precision fp16 to force)")


def training_precision(amp: bool, device: torch.device) -> PrecisionChoice:
    """What ``--amp`` trains in on ``device``.

    CUDA: bf16 where supported, else fp16 (with loss scaling). CPU: bf16 with native bf16 (AMX or
    AVX512-BF16), else fp32, since emulated bf16 is slower than fp32 and no more accurate.
    """
    if not amp:
        return PrecisionChoice("fp32", "--amp not set")
    if device.type == "cuda":
        return PrecisionChoice("bf16" if torch.cuda.is_bf16_supported() else "fp16", "--amp on CUDA")
    if device.type == "cpu":
        native = cpu_bf16_support()
        if native is None:
            return PrecisionChoice(
                "fp32",
                "--amp ignored: this CPU has no native bf16 (AMX or AVX512-BF16); emulated bf16 is slower",
            )
        return PrecisionChoice("bf16", f"--amp on a CPU with native bf16 ({native})")
    return PrecisionChoice("fp32", f"--amp ignored: no mixed precision on {device.type}")


def frozen_backbone_precision(
    requested: str, *, frozen: bool, run: PrecisionChoice, device: torch.device
) -> PrecisionChoice:
    """What the backbone computes in during training (``TrainConfig.backbone_precision``).

    A frozen backbone (``lr_backbone`` 0) takes no gradient: its features only feed the layers
    that train, so computing it in bf16 rounds those features once (to 8 bits of mantissa) and
    changes nothing else. Where bf16 is native that is most of the backbone's time: the ``tiny``
    preset's training step 0.55 -> 0.47 s on a 2-core AMD EPYC with AVX512-BF16 (README,
    "Precision"). ``auto`` takes it on CPUs with native bf16 and CUDA devices with bf16, and keeps
    fp32 for a backbone that trains. Under ``--amp`` the backbone follows the run's precision.
    """
    if run.name != "fp32":
        return PrecisionChoice(run.name, f"the whole model runs in {run.name} (--amp)")
    if requested == "fp32":
        return PrecisionChoice("fp32", "requested")
    if not frozen:
        if requested == "bf16":
            raise ConfigError(
                "--backbone-precision bf16 needs a frozen backbone (--lr-backbone 0); "
                "to train the backbone in bf16 use --amp"
            )
        return PrecisionChoice("fp32", "auto: the backbone trains (lr_backbone > 0)")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", f"{requested}: frozen, CUDA device with bf16")
        if requested == "bf16":
            raise DeviceError(f"--backbone-precision bf16: {device} has no bf16 support; use fp32")
        return PrecisionChoice("fp32", "auto: this CUDA device has no bf16")
    native = cpu_bf16_support() if device.type == "cpu" else None
    if requested == "bf16":
        return PrecisionChoice("bf16", f"requested; CPU {native}" if native else "requested; emulated here")
    if native is None:
        return PrecisionChoice("fp32", f"auto: no native bf16 on this {device.type}")
    return PrecisionChoice("bf16", f"auto: frozen, CPU with native bf16 ({native})")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` to ``dtype`` on ``device``; a no-op context for None or float32 (autocast
    to float32 is not a thing torch does: it warns and disables itself)."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def cpu_threads(num: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (None leaves it alone)."""
    if num is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(old)
