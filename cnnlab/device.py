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
- The CPU load (for the thread policy) and the free memory (for the memory guard) are read from
  Linux's /proc, which also honours a container's cgroup memory limit, and through psutil on
  macOS, Windows and anywhere /proc is missing. `source` ("auto", "proc", "psutil") picks one.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from cnnlab.errors import ConfigError
from cnnlab.train_config import AMP_MODES

__all__ = ["AMP_MODES", "PRECISIONS", "SOURCES", "ThreadPolicy", "autocast", "available_memory",
           "cpu_has_native_bf16", "host_memory", "pick_device", "precision_dtype",
           "resolve_precision", "run_settings", "threads_for_load"]

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


# --- where the load and the free memory are read from -----------------------------------------

SOURCES = ("auto", "proc", "psutil")  # auto: /proc where it exists (Linux), else psutil


def _first(source: str, proc: Callable[[], Any], by_psutil: Callable[[], Any]) -> Any:
    """The first reading that `source` allows and that this system can give, or None."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not one of {', '.join(SOURCES)}")
    for reader in {"auto": (proc, by_psutil), "proc": (proc,), "psutil": (by_psutil,)}[source]:
        value = reader()
        if value is not None:
            return value
    return None


def _psutil() -> Any:
    try:
        import psutil  # a dependency; imported on first use (the CLI starts faster without it)
    except ImportError:
        return None
    return psutil


# --- CPU threads that hold up under load -------------------------------------------------------

CpuTimes = tuple[float, float, float, float]


def _proc_cpu_times() -> CpuTimes | None:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    hz = os.sysconf("SC_CLK_TCK")
    t = os.times()
    return (time.monotonic(), (user + nice + system + irq + softirq) / hz, steal / hz,
            t.user + t.system)


def _psutil_cpu_times() -> CpuTimes | None:
    psutil = _psutil()
    if psutil is None:
        return None
    t, ours = psutil.cpu_times(), psutil.Process().cpu_times()
    # Fields differ by system (macOS: nice; Windows: interrupt, dpc; Linux: irq, softirq, steal).
    busy = t.user + t.system + sum(getattr(t, k, 0.0)
                                   for k in ("nice", "irq", "softirq", "interrupt", "dpc"))
    return (time.monotonic(), busy, getattr(t, "steal", 0.0), ours.user + ours.system)


def _cpu_times(source: str = "auto") -> CpuTimes | None:
    """(monotonic s, busy s of all CPUs, stolen s, this process's CPU s), or None if unknown."""
    return _first(source, _proc_cpu_times, _psutil_cpu_times)


def threads_for_load(max_threads: int, busy_elsewhere: float) -> int:
    """How many threads to run when other programs (and the hypervisor) hold `busy_elsewhere`
    cores: one core fewer for each core they take, counting anything above 0.2 of a core."""
    return max(1, min(max_threads, max_threads - math.ceil(busy_elsewhere - 0.2)))


class ThreadPolicy:
    """threads=0 on a CPU: run on the cores that other programs leave free, rechecked every
    `interval` seconds at a step boundary.

    Why: an OpenMP step split over two threads waits at every barrier for its slowest thread.
    When another program holds one of two cores, that thread is descheduled half the time, and a
    small network's step (many short parallel regions) got 3-30x slower than on one thread
    (BENCHMARKS.md). On an idle machine all cores are faster. Reading /proc/stat costs ~20 us, so
    the policy looks at the load itself instead of guessing from the model.
    """

    def __init__(self, max_threads: int, interval: float = 1.0, sample: float = 0.1,
                 source: str = "auto") -> None:
        self.max_threads = max(1, int(max_threads))
        self.interval = interval
        self.source = source  # where the load is read: see SOURCES
        self._thread_seconds = 0.0
        self._seconds = 0.0
        self.threads = self.max_threads
        self._mark = time.monotonic()
        self._last = _cpu_times(source)
        if self._last is None:  # the load cannot be read here: keep torch's setting
            self.interval = math.inf
        elif self.max_threads > 1 and sample > 0:
            # A first look before the first step: a small network's run is over in seconds, and
            # its first steps on too many threads would be the slowest of all.
            time.sleep(sample)
            self._next = 0.0
            self.step()
        self._mark = time.monotonic()
        self._next = self._mark + self.interval
        self._thread_seconds = self._seconds = 0.0
        torch.set_num_threads(self.threads)

    def step(self) -> int:
        """Call between steps; returns the thread count in force."""
        now = time.monotonic()
        if now < self._next:
            return self.threads
        self._next = now + self.interval
        cur = _cpu_times(self.source)
        if cur is None or self._last is None:
            return self.threads
        dt = cur[0] - self._last[0]
        if dt > 0.05:
            elsewhere = ((cur[1] - self._last[1]) - (cur[3] - self._last[3])
                         + (cur[2] - self._last[2])) / dt
            self._set(threads_for_load(self.max_threads, elsewhere), now)
        self._last = cur
        return self.threads

    def _set(self, n: int, now: float) -> None:
        self._thread_seconds += self.threads * (now - self._mark)
        self._seconds += now - self._mark
        self._mark = now
        if n != self.threads:
            self.threads = n
            torch.set_num_threads(n)

    def mean_threads(self) -> float:
        """The time-weighted mean thread count since the last call (then starts afresh)."""
        now = time.monotonic()
        self._set(self.threads, now)
        mean = self._thread_seconds / self._seconds if self._seconds else float(self.threads)
        self._thread_seconds = self._seconds = 0.0
        return mean


# --- memory a run can still take ----------------------------------------------------------------

MEMORY_ENV = "CNNLAB_AVAILABLE_MEMORY"


@contextlib.contextmanager
def run_settings(device: torch.device, *, threads: int = 0, deterministic: bool = False,
                 seed: int | None = 0) -> Iterator[ThreadPolicy | None]:
    """The process-wide torch settings of one training run, put back as they were on exit:
    CPU threads (threads=0 on a CPU: a load-aware ThreadPolicy, yielded), deterministic
    kernels, cuDNN autotuning and the global seed (None: the RNG is left as it is, for code
    that seeds itself, as the d2l drop-in's users do). Yields the ThreadPolicy, or None."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.backends.cudnn.benchmark)
    policy = None
    try:
        if threads:
            torch.set_num_threads(threads)
        elif device.type == "cpu" and not deterministic:
            # threads=0: all cores, fewer when other programs hold some as the run starts. Chosen
            # once and kept (float results depend on the thread count): a run's numbers never
            # change with what else runs during it, and a resume keeps the count it recorded.
            policy = ThreadPolicy(torch.get_num_threads(), interval=math.inf)
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
        if seed is not None:
            torch.manual_seed(seed)
        yield policy
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        torch.backends.cudnn.benchmark = saved[2]


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no cgroup limit) -> None


def _proc_available() -> int | None:
    """MemAvailable of /proc/meminfo, less if a cgroup limit leaves less (None off Linux)."""
    found = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        return None
    # A container's memory limit (cgroup v2, else v1) can be far below the host's free memory.
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 2**60:
            found = min(found, max(cap - used, 0))
            break
    return found


def _psutil_available() -> int | None:
    psutil = _psutil()
    return int(psutil.virtual_memory().available) if psutil is not None else None


def host_memory(source: str = "auto") -> int | None:
    """Bytes of the machine's memory free for a new allocation (None when unknown); no override,
    no device: `available_memory` is what a run asks."""
    return _first(source, _proc_available, _psutil_available)


def available_memory(device: torch.device) -> int | None:
    """Bytes a run can still allocate on `device` (None when it cannot be told).

    CUDA: the device's free memory. CPU (and MPS, which shares it): MemAvailable, capped by a
    cgroup's limit, on Linux; psutil's available memory elsewhere. $CNNLAB_AVAILABLE_MEMORY
    (e.g. 8G, 512M) overrides the figure: lower it to test a small machine, raise it to go ahead
    where swap makes room.
    """
    forced = os.environ.get(MEMORY_ENV, "").strip()
    if forced:
        size = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kKmMgGtT]?)(i?)[bB]?", forced)
        if size is None:
            raise ConfigError(f"{MEMORY_ENV}={forced!r} is not a size such as 8G or 512M")
        number, prefix, binary = size.groups()
        power = "kmgt".find(prefix.lower()) + 1 if prefix else 0
        return int(float(number) * (1024 if binary else 1000) ** power)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return host_memory()
