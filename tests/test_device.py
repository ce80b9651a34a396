"""Device and precision: resolved once, recorded, the same on every CPU unless bf16 is asked for."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from _trainkit import TinyNet, make_dataset

from cnnlab.device import (
    CPU_BF16_ENV,
    MEMORY_ENV,
    ThreadPolicy,
    autocast,
    available_memory,
    cpu_has_native_bf16,
    host_memory,
    pick_device,
    precision_dtype,
    resolve_precision,
    run_settings,
    threads_for_load,
)
from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, train

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", ["1", "0"])
def test_cpu_precision_rules_on_both_kinds_of_cpu(native: str, monkeypatch) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, native)
    assert cpu_has_native_bf16() is (native == "1")
    assert resolve_precision("auto", CPU) == "off"  # float32 on every CPU by default
    assert resolve_precision("off", CPU) == "off"
    assert resolve_precision("bf16", CPU) == "bf16"  # asked for: always
    assert resolve_precision("fp16", CPU) == "fp16"
    assert resolve_precision("fast", CPU) == ("bf16" if native == "1" else "off")
    assert precision_dtype("off") is None and precision_dtype("bf16") is torch.bfloat16


def test_the_override_is_checked(monkeypatch) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "maybe")
    with pytest.raises(ConfigError, match=CPU_BF16_ENV):
        cpu_has_native_bf16()
    with pytest.raises(ConfigError, match="not resolved"):
        precision_dtype("auto")


def test_devices() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="not a device"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")
        assert pick_device("cuda", fallback=True) == pick_device("auto")  # a run read back
    with autocast(CPU, None):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize(("native", "amp", "want"), [
    ("1", "auto", "off"), ("0", "auto", "off"), ("1", "fast", "bf16"), ("0", "fast", "off")])
def test_a_run_records_what_it_used(native, amp, want, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, native)
    ds = make_dataset(n_train=64, n_test=32)
    cfg = TrainConfig(epochs=1, batch_size=32, progress="none", plot=False, tensorboard=False,
                      amp=amp, threads=1, device="auto")
    out = tmp_path / "run"
    result = train(TinyNet(), ds, cfg, out_dir=out)
    assert result.config.amp == want
    saved = json.loads((out / "config.json").read_text())
    assert saved["amp"] == want and saved["device"] == "cpu" and saved["threads"] == 1
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["threads"] == 1
    # The same run, read back on a machine of the other kind, keeps the recorded precision.
    monkeypatch.setenv(CPU_BF16_ENV, "0" if native == "1" else "1")
    from cnnlab.checkpoint import load_checkpoint

    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["config"]["amp"] == want


def test_a_default_threads_run_records_the_threads_it_chose_and_the_policy(tmp_path: Path
                                                                          ) -> None:
    ds = make_dataset(n_train=64, n_test=32)
    cfg = TrainConfig(epochs=1, batch_size=32, progress="none", plot=False, tensorboard=False,
                      threads=0, device="cpu")
    most = torch.get_num_threads()  # what threads=0 starts from
    train(TinyNet(), ds, cfg, out_dir=tmp_path / "run")
    env = json.loads((tmp_path / "run" / "config.json").read_text())["environment"]
    assert 1 <= env["cpu_threads"] <= most  # the count it chose from the load, and kept
    assert env["cpu_thread_policy"] == "chosen from the load at the start, then kept"
    from cnnlab.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["cpu_threads"] == \
        env["cpu_threads"]  # what a resume keeps


def test_threads_for_load() -> None:
    assert threads_for_load(2, 0.0) == 2  # an idle machine: every core
    assert threads_for_load(2, 0.15) == 2  # a little background noise
    assert threads_for_load(2, 0.5) == 1  # a browser tab busy on half a core
    assert threads_for_load(2, 1.0) == 1 and threads_for_load(2, 5.0) == 1
    assert threads_for_load(8, 2.5) == 5
    assert threads_for_load(1, 0.0) == 1


def test_thread_policy_follows_the_load(monkeypatch) -> None:
    import cnnlab.device as device

    clock = {"t": 0.0, "busy": 0.0, "ours": 0.0}
    monkeypatch.setattr(device, "_cpu_times",
                        lambda source: (clock["t"], clock["busy"], 0.0, clock["ours"]))
    monkeypatch.setattr(device.time, "monotonic", lambda: clock["t"])
    old = torch.get_num_threads()
    try:
        policy = ThreadPolicy(2, interval=1.0)
        assert policy.threads == 2 and torch.get_num_threads() == 2

        def run(seconds: float, ours: float, others: float) -> int:
            clock["t"] += seconds
            clock["ours"] += ours * seconds
            clock["busy"] += (ours + others) * seconds
            return policy.step()

        assert run(1.0, 2.0, 0.0) == 2  # quiet
        assert run(1.0, 2.0, 1.0) == 1 and torch.get_num_threads() == 1  # a neighbour arrives
        assert run(0.5, 1.0, 1.0) == 1  # not rechecked before the interval is over
        assert run(1.0, 1.0, 1.0) == 1
        assert run(1.0, 1.0, 0.0) == 2  # it left
        assert 1.0 < policy.mean_threads() < 2.0
    finally:
        torch.set_num_threads(old)


def _skip_without(source: str) -> None:
    if source == "proc" and not os.path.exists("/proc/stat"):
        pytest.skip("the proc source needs Linux's /proc/stat")


@pytest.mark.parametrize("source", ["proc", "psutil"])  # psutil: what macOS and Windows use
def test_thread_policy_sees_a_real_neighbour(source: str) -> None:
    import subprocess
    import sys
    import time

    _skip_without(source)
    n = torch.get_num_threads()
    if n < 2:
        pytest.skip("needs two cores")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        policy = ThreadPolicy(n, interval=0.5, source=source)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and policy.step() == n:
            time.sleep(0.05)
        assert policy.threads <= n - 1  # the neighbour holds a core: one thread fewer
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(n)


def test_the_two_sources_read_the_same_cpu_times() -> None:
    """On Linux both read the kernel's counters: psutil (macOS and Windows' source) agrees with
    /proc/stat on the CPUs' busy time and this process's CPU time."""
    from cnnlab.device import _cpu_times

    _skip_without("proc")
    proc, ps = _cpu_times("proc"), _cpu_times("psutil")
    assert proc is not None and ps is not None
    assert abs(ps[1] - proc[1]) <= 0.01 * proc[1] + 1.0, (proc, ps)  # busy s of all CPUs
    assert abs(ps[3] - proc[3]) <= 0.1, (proc, ps)  # this process's CPU s
    assert _cpu_times("auto") is not None
    with pytest.raises(ValueError, match="source='wmi'"):
        _cpu_times("wmi")


@pytest.mark.parametrize("source", ["proc", "psutil"])
def test_host_memory_from_each_source(source: str) -> None:
    import psutil

    _skip_without(source)
    free, total = host_memory(source), psutil.virtual_memory().total
    assert free is not None and 0 < free <= total
    if source == "psutil" and os.path.exists("/proc/meminfo"):
        # the proc source is MemAvailable, lowered only by a cgroup limit
        assert host_memory("proc") <= free * 1.1


def test_available_memory_reads_the_host_and_takes_an_override(monkeypatch) -> None:
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    free = available_memory(CPU)
    if free is not None:  # MemAvailable (capped by a cgroup) is below the machine's total
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        assert 0 < free <= total
    for text, value in (("8G", 8 * 10**9), ("512M", 512 * 10**6), ("1.5GiB", 3 * 2**29),
                        ("2 GB", 2 * 10**9), ("4096", 4096)):
        monkeypatch.setenv(MEMORY_ENV, text)
        assert available_memory(CPU) == value
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(ConfigError, match=f"{MEMORY_ENV}='lots' is not a size such as 8G"):
        available_memory(CPU)


def test_run_settings_puts_the_process_wide_settings_back() -> None:
    """A run's threads, deterministic kernels and cuDNN autotuning are set inside, restored after
    (also when the run fails), so a second run or the caller's code sees what it had."""
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.backends.cudnn.benchmark)
    want = 1 if before[0] != 1 else 2
    with pytest.raises(RuntimeError, match="boom"):
        with run_settings(torch.device("cpu"), threads=want, deterministic=True, seed=5) as pol:
            assert pol is None  # fixed threads: no load-aware policy
            assert torch.get_num_threads() == want and torch.are_deterministic_algorithms_enabled()
            assert torch.initial_seed() == 5
            raise RuntimeError("boom")
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
            torch.backends.cudnn.benchmark) == before
    with run_settings(torch.device("cpu")) as pol:  # threads=0 on a CPU: the load-aware policy
        assert pol is not None and pol.max_threads == before[0]
    assert torch.get_num_threads() == before[0]
