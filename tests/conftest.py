"""Shared fixtures: where the real data is, and small deterministic settings for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def real_data_root() -> Path | None:
    """The folder holding fashion-mnist/ and mnist/ (CNNLAB_DATA, else ../shared/data), or None."""
    for root in (os.environ.get("CNNLAB_DATA"), SHARED_DATA):
        if root and (Path(root) / "fashion-mnist").is_dir():
            return Path(root)
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets' folder; tests that need it are skipped, with the reason, when absent."""
    root = real_data_root()
    if root is None:
        pytest.skip(f"real data not found (set CNNLAB_DATA or place it at {SHARED_DATA})")
    return root


@pytest.fixture
def tmpfs(tmp_path: Path):
    """tmpfs(size, name) -> a freshly mounted tmpfs of `size` ("400k", "1m") under tmp_path: a
    real small disk. Skipped where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    import subprocess

    mounted: list[Path] = []

    def mount(size: str, name: str = "disk") -> Path:
        mnt = tmp_path / name
        mnt.mkdir()
        if os.geteuid() != 0 or subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                capture_output=True).returncode != 0:
            pytest.skip("mounting a small tmpfs needs root")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in reversed(mounted):
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def read_only(tmp_path: Path, tmpfs):
    """read_only(fill) -> a folder holding what fill(folder) put there, then made unwritable:
    a tmpfs remounted read-only as root (root ignores permissions), chmod 0555 otherwise."""
    import subprocess

    dirs: list[Path] = []

    def make(fill=None) -> Path:
        root = os.geteuid() == 0
        folder = tmpfs("16m", "ro") if root else tmp_path / "ro"
        folder.mkdir(exist_ok=True)
        if fill is not None:
            fill(folder)
        if root:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        else:
            dirs.extend(p for p in [folder, *folder.rglob("*")] if p.is_dir())
            for d in dirs:
                d.chmod(0o555)
        return folder

    yield make
    for d in dirs:  # let pytest clean up
        d.chmod(0o755)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (restored after): its models are small, and on a shared,
    loaded 2-core machine two spinning threads run small convolutions up to 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
