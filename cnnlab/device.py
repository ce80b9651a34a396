"""Where and in what precision a run computes: device choice, precision, autocast, CPU features.

Every part of cnnlab that picks a device or a precision asks this module, so the rules live in one
place:

- device "auto": CUDA, then Apple MPS, then the CPU.
- precision (the `amp` setting) is resolved once, when a run starts, to one of "off" (float32),
  "bf16" or "fp16", and that resolved word is what config.json records. `eval`, `predict` and
  `report` reuse the recorded word; they never resolve "auto" again on another machine.

      amp       CUDA                 CPU with native bf16    other CPU, MPS
      auto      bf16 (fp16 if no bf16)   float32             float32
      fast      bf16 (fp16 if no bf16)   bf16                float32 (and the run says so)
      bf16      bf16                 bf16                    bf16 (emulated: slow on such a CPU)
      fp16      fp16                 fp16                    fp16
      off       float32              float32                 float32

  So a CPU run is float32 unless bf16 is asked for (`--amp bf16`) or a recipe written for speed
  asks for "fast": the same command gives the same numbers on every CPU by default.
- `CNNLAB_CPU_BF16=1` / `=0` overrides the detection of native bf16 (the avx512_bf16 or amx_bf16
  flags of /proc/cpuinfo), e.g. to exercise both branches of "fast" on any machine.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from cnnlab.errors import ConfigError
from cnnlab.train_config import AMP_MODES

__all__ = ["AMP_MODES", "PRECISIONS", "autocast", "cpu_has_native_bf16", "pick_device",
           "precision_dtype", "resolve_precision"]

PRECISIONS = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # resolved word -> dtype
PRECISION_NAMES = {"off": "float32", "bf16": "bfloat16 autocast", "fp16": "float16 autocast"}
CPU_BF16_ENV = "CNNLAB_CPU_BF16"


def pick_device(name: str | None = "auto", *, fallback: bool = False) -> torch.device:
    """'auto' -> cuda, then mps, then cpu. An explicit device that is absent is a ConfigError,
    or, with fallback=True (reading a run back on another machine), the best device present."""
    if name in ("auto", "", None):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or mps") from None
    missing = ((dev.type == "cuda" and not torch.cuda.is_available())
               or (dev.type == "mps" and not torch.backends.mps.is_available()))
    if missing and fallback:
        return pick_device("auto")
    if missing:
        what = "CUDA" if dev.type == "cuda" else "Apple MPS"
        raise ConfigError(f"device={name!r} but {what} is not available here; use device='auto'")
    return dev


@functools.cache
def _cpuinfo_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # not Linux: no cheap way to tell, so stay in float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively; $CNNLAB_CPU_BF16 (1/0) overrides the detection."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in ("1", "yes", "true", "on"):
        return True
    if forced in ("0", "no", "false", "off"):
        return False
    if forced:
        raise ConfigError(f"{CPU_BF16_ENV}={forced!r} must be 1 or 0 (or unset to detect)")
    return _cpuinfo_has_bf16()


def resolve_precision(amp: str, device: torch.device) -> str:
    """The precision a run uses, as the word config.json records: "off", "bf16" or "fp16"."""
    if amp not in AMP_MODES:
        raise ConfigError(f"amp={amp!r} must be one of {', '.join(AMP_MODES)}")
    if amp in ("off", "bf16", "fp16"):
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "fast" and device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "off"


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision word (None: plain float32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not resolved; expected off, bf16 or fp16")
    return PRECISIONS[precision]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast for dtype on device, or nothing when dtype is None (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
