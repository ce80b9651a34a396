"""Getting data files safely: mirror fallback, checksums, atomic writes, SHA256SUMS verification.

Nothing here knows about datasets; cnnlab.data says which files, mirrors and checksums to use.
A download goes to a hidden `.NAME.cnnlab-<pid>.tmp` file beside its destination (cnnlab.atomic),
then renamed into place only after its length and published checksum check out, so an interrupted or
corrupt download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from cnnlab.atomic import write_atomic
from cnnlab.errors import DataError, OutputError

log = logging.getLogger(__name__)

SUMS_FILE = "SHA256SUMS"
_CHUNK = 1 << 20
# (path, size, mtime_ns) -> sha256 of files already hashed in this process.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def user_cache_dir() -> Path:
    """cnnlab's cache folder: $XDG_CACHE_HOME/cnnlab, else ~/.cache/cnnlab."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cnnlab"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check that it exists and is "
                        "readable") from e
    return h.hexdigest()


def _fetch_one(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Download one URL to `dest` through a temporary file; raise on any mismatch."""

    def download(out: BinaryIO) -> None:
        h = hashlib.md5(usedforsecurity=False)
        got = 0
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                got += len(chunk)
        if length is not None and got != int(length):
            raise DataError(f"download stopped after {got} of {length} bytes")
        if h.hexdigest() != md5.lower():
            raise DataError(f"checksum mismatch: md5 {h.hexdigest()}, published {md5}")

    # Renamed into place only when the length and checksum agree; otherwise removed.
    write_atomic(dest, download)


def fetch(urls: Sequence[str], dest: str | Path, md5: str, *, timeout: float = 30.0) -> Path:
    """Download `dest` from the first of `urls` that serves it with the published md5."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {dest.parent}: {e.strerror or e}; choose a writable "
                        "folder (root=... or CNNLAB_DATA)") from e
    errors = []
    for url in urls:
        log.info("downloading %s", url)
        try:
            _fetch_one(url, dest, md5, timeout)
            return dest
        except (OSError, ValueError, http.client.HTTPException, DataError) as e:
            # URLError wraps the socket error; HTTPError's own text carries the status code.
            http_error = isinstance(e, urllib.error.HTTPError)
            reason = e.reason if isinstance(e, urllib.error.URLError) and not http_error else e
            errors.append(f"{url}: {reason}")
            log.info("failed: %s: %s", url, reason)
    raise DataError(f"could not download {dest.name} ({'; '.join(errors)}); check the network, "
                    f"or copy the file into {dest.parent} yourself")


def download_files(folder: str | Path, md5s: dict[str, str], mirrors: Sequence[str],
                   *, timeout: float = 30.0) -> Path:
    """Fetch the files of `md5s` missing from `folder`, then write its SHA256SUMS."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        for name, md5 in md5s.items():
            if not (folder / name).is_file():
                fetch([m.rstrip("/") + "/" + name for m in mirrors], folder / name, md5,
                      timeout=timeout)
    except DataError:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # leave no empty folder behind a failed first download
        raise
    # Downloaded (md5-checked) files get a SHA256SUMS so later loads verify them like any folder.
    if not (folder / SUMS_FILE).exists():
        lines = "".join(f"{file_digest(folder / n)}  {n}\n" for n in md5s)
        write_atomic(folder / SUMS_FILE, lines.encode())
    return folder


def read_sums(folder: Path) -> dict[str, str]:
    """The `name -> sha256` entries of folder/SHA256SUMS ({} when there is none)."""
    path = folder / SUMS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}; fix its permissions or delete it") from e
    sums = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path} line {n} is not '<sha256>  <file name>': {line!r}; "
                            "fix or delete the file")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def _cache_file() -> Path:
    return user_cache_dir() / "verified.json"


def _load_verified() -> dict[str, list]:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_verified(entries: dict[str, list]) -> None:
    try:
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_cache_file(), json.dumps(entries, indent=0))
    except (OSError, OutputError):
        log.debug("could not write %s; verification will repeat next time", _cache_file())


def md5_of(path: str | Path, *, use_cache: bool = True) -> str:
    """The md5 of a file, remembered by (size, mtime) in this process and in the user cache."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check that it exists and is "
                        "readable") from e
    key = (f"md5:{path}", st.st_size, st.st_mtime_ns)
    disk = _load_verified() if use_cache else {}
    if use_cache and key in _VERIFIED:
        return _VERIFIED[key]
    entry = disk.get(key[0])
    if use_cache and entry and entry[:2] == [st.st_size, st.st_mtime_ns]:
        return entry[2]
    digest = file_digest(path, "md5")
    _VERIFIED[key] = digest
    if use_cache:
        disk[key[0]] = [st.st_size, st.st_mtime_ns, digest]
        _save_verified(disk)
    return digest


def verify_md5(path: str | Path, md5: str) -> None:
    """Check a file against its published md5; DataError naming it when it differs.

    Remembered by (size, mtime) in this process and in the user cache, as verify_folder does.
    """
    digest = md5_of(path)
    if digest != md5.lower():
        raise DataError(f"{Path(path).resolve()} fails its checksum (md5 {digest}, published "
                        f"{md5}): the file is corrupt, truncated or not the official one; "
                        "delete it and download or copy it again")


def verify_folder(folder: str | Path, names: Iterable[str], *, use_cache: bool = True) -> list[str]:
    """Check `names` against folder/SHA256SUMS; return the names verified.

    A file whose (size, mtime) matches an earlier successful check is not hashed again: the result
    is kept in this process and in the user cache, so repeated loads stay fast.
    """
    folder = Path(folder)
    sums = read_sums(folder)
    if not sums:
        return []
    disk = _load_verified() if use_cache else {}
    changed = False
    done = []
    for name in names:
        if name not in sums:
            continue
        path = (folder / name).resolve()
        try:
            st = path.stat()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror or e}; check that it exists and is "
                            "readable") from e
        key = (str(path), st.st_size, st.st_mtime_ns)
        if use_cache and (_VERIFIED.get(key) == sums[name]
                          or disk.get(str(path)) == [st.st_size, st.st_mtime_ns, sums[name]]):
            done.append(name)
            continue
        digest = file_digest(path)
        if digest != sums[name]:
            raise DataError(f"{folder / name} fails its checksum in {folder / SUMS_FILE} "
                            f"(sha256 {digest[:16]}..., listed {sums[name][:16]}...): the file is "
                            "corrupt or was replaced; copy it again, or delete the folder's files "
                            "so cnnlab downloads them")
        _VERIFIED[key] = digest
        disk[str(path)] = [st.st_size, st.st_mtime_ns, digest]
        changed = True
        done.append(name)
    if changed and use_cache:
        _save_verified(disk)
    return done
