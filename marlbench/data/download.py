"""Download public vault archives: streaming, resumable (HTTP Range), verified, unpacked atomically.

1. ``fetch``: stream the archive into ``<name>.part`` beside its destination with a progress bar. After a cut
   connection it retries with exponential backoff and asks only for the missing bytes (``Range: bytes=N-``); a
   server that ignores the range restarts the file. 4xx answers (other than 408/429) are not retried.
2. ``verify``: the size against the manifest (or the server's length) and the sha256 against the manifest, or
   against the checksum recorded when this URL was first downloaded (trust on first use); a first download is
   recorded only after it unpacked cleanly.
3. ``unpack``: the zip is CRC-checked and extracted into a hidden directory beside the vault's place, checked to
   hold ``<scenario>.vlt/<uid>/metadata.json``, then renamed into place. Any failure removes what it wrote: no
   half-written vault or dataset is ever visible.

Only the standard library (urllib, zipfile, hashlib) and tqdm are used.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from urllib.parse import urlparse

from marlbench.data.formats.vault import vault_uids
from marlbench.errors import DatasetError, UnavailableError
from marlbench.paths import data_dir
from marlbench.results import atomic_write_json

CHUNK = 1 << 20
CHECKSUMS = "checksums.json"
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)


def vault_dir(vault_id: str) -> Path:
    """Where the vault ``<source>/<env>/<scenario>`` is unpacked: ``<data>/vaults/<source>/<env>/<scenario>.vlt``."""
    return data_dir() / "vaults" / f"{vault_id}.vlt"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _manual(url: str, task: str) -> str:
    return (f"download it manually from {url} (browser or another machine) and run `marlbench data download {task} "
            f"--archive FILE`")


def _retryable(err: Exception) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500 or err.code in (408, 429)
    return True


def fetch(url: str, dest: Path, task: str, expected_size: int | None = None, retries: int = 4,
          backoff: float = 1.0, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and return ``dest``; see the module docstring."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urlparse(url).hostname or url
    total = expected_size
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        offset = part.stat().st_size if part.exists() else 0
        if total is not None and offset == total:
            break
        request = urllib.request.Request(url, headers={"User-Agent": "marlbench", **(
            {"Range": f"bytes={offset}-"} if offset else {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if response.status == 206:
                    start, _, size = response.headers.get("Content-Range", "").removeprefix("bytes ").partition("/")
                    if int(start.split("-")[0] or 0) != offset:
                        raise DatasetError(f"{host} answered the range request for byte {offset} with "
                                           f"'{response.headers.get('Content-Range')}'")
                    total = int(size) if size.isdigit() else total
                    mode = "ab"
                else:  # 200: the whole file (no resume, or the server ignores ranges)
                    offset, mode = 0, "wb"
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else total
                if expected_size is not None and total is not None and total != expected_size:
                    raise DatasetError(f"{url} is {total} bytes but the manifest says {expected_size}; the "
                                       f"published file changed, so its checksum cannot be trusted either")
                with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                 unit_divisor=1024, desc=dest.name, disable=not progress,
                                                 mininterval=0.5) as bar:
                    while block := response.read(CHUNK):
                        f.write(block)
                        bar.update(len(block))
            size = part.stat().st_size
            if total is None or size == total:
                break
            last_error = http.client.IncompleteRead(b"", total - size)  # the server closed early: resume
        except _TRANSIENT as e:
            if getattr(e, "code", None) == 416 and offset:  # nothing left after byte `offset`: the part is whole
                break
            if not _retryable(e):
                code = getattr(e, "code", "")
                raise DatasetError(f"{host} refused {url} (HTTP {code}); {_manual(url, task)}") from None
            last_error = e
    else:
        reason = getattr(last_error, "reason", None) or last_error
        raise UnavailableError(f"cannot download from {host} after {retries + 1} attempt(s) ({reason}); "
                               f"{_manual(url, task)}")
    os.replace(part, dest)
    return dest


def _checksum_store():
    return data_dir() / CHECKSUMS


def recorded_checksum(url: str) -> dict | None:
    import json

    path = _checksum_store()
    return json.loads(path.read_text()).get(url) if path.exists() else None


def record_checksum(url: str, sha256: str, size: int) -> None:
    import json

    path = _checksum_store()
    known = json.loads(path.read_text()) if path.exists() else {}
    known[url] = {"sha256": sha256, "size": size, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_json(path, known)


def verify(archive: Path, url: str, sha256: str | None, size: int | None, delete: bool = True) -> tuple[str, bool]:
    """Check size and checksum; returns (sha256, whether it still needs recording). Deletes a bad archive if
    ``delete`` (a download; never a user's own file)."""
    found_size = archive.stat().st_size
    recorded = recorded_checksum(url)
    expected = sha256 or (recorded or {}).get("sha256")
    source = "the manifest" if sha256 else f"the first download (recorded in {_checksum_store()})"
    size = size or (recorded or {}).get("size")
    digest = sha256_file(archive)
    problem = None
    if size is not None and found_size != size:
        problem = f"size {found_size} bytes, expected {size} from {source}"
    elif expected is not None and digest != expected:
        problem = f"sha256 {digest[:16]}..., expected {expected[:16]}... from {source}"
    if problem:
        if delete:
            archive.unlink(missing_ok=True)
        raise DatasetError(f"archive {archive.name} of {url} is corrupt or changed ({problem})" + (
            "; it was deleted. Run the download again; if it keeps failing, the published file changed"
            if delete else ""))
    return digest, expected is None


def unpack(archive: Path, vault_id: str, target: Path) -> Path:
    """Extract the vault ``<scenario>.vlt`` from ``archive`` into ``target`` (a ``.vlt`` path), atomically."""
    scenario_dir = target.name  # <scenario>.vlt
    tmp = target.with_name(f".{scenario_dir}.unpack-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise DatasetError(f"archive {archive.name} is corrupt (CRC error in {bad})")
                for member in zf.namelist():
                    p = Path(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise DatasetError(f"archive {archive.name} holds an unsafe path {member!r}; refused")
                zf.extractall(tmp)
        # a damaged deflate stream fails inside zlib before the CRC check can
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
            raise DatasetError(f"archive {archive.name} is corrupt or not a zip file ({e})") from None
        found = sorted(tmp.rglob(scenario_dir), key=lambda p: len(p.parts))
        found = [p for p in found if p.is_dir() and vault_uids(p)]
        if not found:
            raise DatasetError(f"archive {archive.name} holds no vault {scenario_dir}/<uid>/metadata.json "
                               f"(expected for {vault_id})")
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.with_name(f".{scenario_dir}.old-{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        os.replace(found[0], target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_vault(vault: dict, task_name: str, archive: Path | None = None, url: str | None = None,
                   retries: int = 4, backoff: float = 1.0, timeout: float = 60.0, progress: bool = True,
                   log=print) -> Path:
    """Fetch (or take ``archive``), verify and unpack one manifest vault; returns its ``.vlt`` directory."""
    url = url or vault["url"]
    target = vault_dir(vault["id"])
    downloaded = archive is None
    if downloaded:
        dest = data_dir() / "downloads" / f"{vault['id'].replace('/', '__')}.zip"
        log(f"downloading {url}")
        archive = fetch(url, dest, task_name, vault.get("size"), retries, backoff, timeout, progress)
    digest, record = verify(archive, url, vault.get("sha256"), vault.get("size"), delete=downloaded)
    size = archive.stat().st_size
    try:
        unpack(archive, vault["id"], target)
    finally:
        if downloaded:
            archive.unlink(missing_ok=True)
    if record:
        record_checksum(url, digest, size)
        log(f"recorded sha256 {digest} for {url} (trust on first use: later downloads must match)")
    log(f"unpacked {vault['id']} -> {target}")
    return target
