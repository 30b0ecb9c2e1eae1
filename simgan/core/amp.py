"""How the training loops (refiner and estimators) compute, in one place: what the
``precision`` and ``threads`` keys (:mod:`simgan.core.precision`) do at run time.

fp32 (the default) is today's code path exactly: :meth:`Amp.wrap` returns the module itself and
:meth:`Amp.step` is ``loss.backward(); opt.step()``, so checkpoints keep their bytes. bf16 runs
the nets' forward passes under ``torch.autocast`` (CPU or CUDA); fp16 does too and scales the
loss with ``torch.amp.GradScaler`` (fp16 gradients underflow without it). fp16 needs CUDA: on
a CPU it is refused, naming the key (it would be slow and nothing here could test it).

The wrapped nets hand back float32 outputs, so the losses, the history buffer, the label
model and the metrics stay in float32 whatever the precision: only the convolutions change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from simgan.core.precision import FP32, Precision

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (None: as the caller set them), then give the
    caller its own count back. Trainers pass their recipe's ``threads``: the trained bytes
    depend on the count, so it is the recipe's, not the machine's, and the same params train
    the same weights on any CPU with the same instruction set, whatever its cores (a stage's
    other work, inference, gives the same bytes at any count and keeps the cores the process
    was given)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class PrecisionError(ValueError):
    """A precision this device cannot run (fp16 on a CPU, bf16 on a GPU without it)."""


def check_precision(device: torch.device, precision: Precision) -> None:
    """Refuse a precision the device cannot train in, naming the key and what to use."""
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionError(
            f"precision: fp16 needs a CUDA device (this run's device is {device.type}); "
            "use bf16 or fp32 here")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError("precision: bf16 is not supported by this GPU; use fp16 or fp32")
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise PrecisionError(f"precision: bf16 autocast is not supported on {device.type}; "
                             "use fp32")


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, list | tuple):
        return type(out)(_to_float32(o) for o in out)
    return out


class _Autocast(nn.Module):
    """Runs ``module`` under autocast and returns float32 outputs (tensor or list/tuple)."""

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            out = self.module(*args, **kwargs)
        return _to_float32(out)


class Amp:
    """How one trainer runs forward and backward passes at ``precision`` on ``device``.

    Build it with :meth:`for_training` (which checks the pair); the constructor itself does
    not, so that the fp16 loss-scaling logic can be exercised on a CPU in tests.
    """

    def __init__(self, device: torch.device, precision: Precision = FP32) -> None:
        self.device, self.precision = device, precision
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    @classmethod
    def for_training(cls, device: torch.device, precision: Precision) -> Amp:
        check_precision(device, precision)
        return cls(device, precision)

    @property
    def enabled(self) -> bool:
        return self.precision != FP32

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` itself at fp32; else a wrapper running it under autocast."""
        if not self.enabled:
            return module
        return _Autocast(module, self.device.type, _DTYPES[self.precision])

    def step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        """Backward and optimiser step; with fp16 through the loss scaler (which skips the
        step when the scaled gradients overflowed, then lowers the scale)."""
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
            return
        loss.backward()
        opt.step()
