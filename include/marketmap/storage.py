"""Where Market Map's files live: one storage root every worker and the api-server share.

Inbox files (CRM exports, bought enrichment files), run outputs (summaries, rejected rows, CRM
import files, change previews), reports and the alert outbox all live under one root URL:

* ``MARKETMAP_STORAGE_URL`` — any fsspec URL: ``s3://bucket/marketmap``, ``gs://…``,
  ``abfs://…``, or ``file:///mnt/shared/marketmap`` (a mounted share);
* default ``file://$MARKETMAP_HOME`` — right for one machine (``make demo``, ``make ui``).

Paths are `universal-pathlib <https://github.com/fsspec/universal_pathlib>`_ ``UPath`` objects —
the library Airflow's ``ObjectStoragePath`` is built on — so code uses one pathlib API
(``/``, ``open``, ``read_text``, ``write_text``, ``mkdir``, ``glob``, ``exists``) whatever the
backend. A ``file://`` root gives plain local paths (``os.fspath`` works, as for pandas and
pyarrow). Object-store credentials come from the backend's usual sources (for S3: the
``AWS_*`` environment, the instance role); with ``MARKETMAP_STORAGE_CONN_ID`` set the
orchestration layer builds paths as Airflow ``ObjectStoragePath`` objects bound to that
Airflow connection (:func:`register_factory`), so domain code never imports Airflow.

Worker-local directories (``$MARKETMAP_HOME/logs``, the SQLite warehouse of the embedded default)
stay under :func:`marketmap.settings.marketmap_home`; nothing another process must read does.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from upath import UPath

#: ``url -> path`` (or None: a plain ``UPath``); set by the orchestration layer to build Airflow
#: ObjectStoragePaths.
PathFactory = Callable[[str], Any]
_factory: PathFactory | None = None

#: fsspec options of every non-local storage path. No listing cache: fsspec keeps a folder's listing
#: for the life of the process and trusts it for ``glob``, ``exists`` and ``is_file``, but other
#: processes (the workers) write under the root all the time, so a long-lived process (the
#: api-server) would never see reports written after its first listing, and a new file in a folder
#: it had listed would not exist for it.
STORAGE_OPTIONS: dict[str, Any] = {"use_listings_cache": False}


def register_factory(factory: PathFactory | None) -> None:
    """Build non-local paths with ``factory`` (``None``: plain ``UPath``)."""
    global _factory
    _factory = factory


def storage_url() -> str:
    """The storage root URL (``MARKETMAP_STORAGE_URL``, default ``file://$MARKETMAP_HOME``)."""
    url = os.environ.get("MARKETMAP_STORAGE_URL", "").strip()
    if url:
        return url.rstrip("/") or url
    from marketmap.settings import marketmap_home

    return f"file://{marketmap_home().absolute()}"


def _local(url: str) -> str | None:
    """The local directory of a ``file://`` URL or bare path, else None."""
    if url.startswith("file://"):
        return url[len("file://") :] or "/"
    if "://" not in url:
        return url
    return None


def path(url: str | os.PathLike) -> UPath:
    """A storage path for a URL or local path (a path object is returned as it is)."""
    if isinstance(url, UPath) or (not isinstance(url, str | Path) and hasattr(url, "read_bytes")):
        return url  # already a storage path (UPath or ObjectStoragePath)
    text = os.fspath(url)
    local = _local(text)
    if local is not None:
        return UPath(local)  # PosixUPath: a pathlib.Path, usable by every local reader
    made = _factory(text) if _factory else None
    return made if made is not None else UPath(text, **STORAGE_OPTIONS)


def root() -> UPath:
    """The storage root (see the module docs)."""
    url = storage_url()
    local = _local(url)
    if local is not None and not Path(local).is_absolute():
        raise ValueError(
            f"MARKETMAP_STORAGE_URL={url!r}: a local storage root must be absolute "
            "(file:///shared/marketmap), or every process would resolve it somewhere else"
        )
    return path(url)


def is_local(p: Any) -> bool:
    """True when ``p`` is on this machine's file system (``os.fspath`` gives a usable path)."""
    if isinstance(p, str):
        return _local(p) is not None
    return getattr(p, "protocol", "") in ("", "file", "local")


@contextlib.contextmanager
def local_copy(p: Any) -> Iterator[Path]:
    """A local file with ``p``'s content, for readers that need a file name (pyarrow, pandas
    with the C engine): ``p`` itself when it is local, else a temporary download removed after."""
    if is_local(p):
        yield Path(os.fspath(p))
        return
    suffix = "".join(Path(p.name).suffixes)
    with tempfile.TemporaryDirectory(prefix="marketmap-") as tmp:
        dest = Path(tmp) / f"copy{suffix}"
        with p.open("rb") as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield dest


def replace_atomically(p: Any, write: Callable[[Any], None], suffix: str = ".tmp") -> None:
    """Write ``p`` so a reader never sees half of it and a failed ``write`` leaves it as it was:
    into a sibling then renamed (local), or into a local temporary file then uploaded in one call
    (object store)."""
    if is_local(p):
        tmp = Path(os.fspath(p) + suffix)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, os.fspath(p))
        return
    # Not write(p): an fsspec file uploads what it holds when it is closed, even when closed by an
    # exception, so a write that failed half-way would replace the object with its first half.
    # put_file is one PUT (a multipart upload above the chunk size, aborted if it fails).
    with tempfile.TemporaryDirectory(prefix="marketmap-") as tmp:
        local = Path(tmp) / p.name
        write(local)
        target = getattr(p, "__wrapped__", p)  # an ObjectStoragePath proxies the UPath that does its I/O
        target.fs.put_file(os.fspath(local), target.path)


#: Tries of a conditional append on S3 before giving up (each lost race means another writer won).
APPEND_TRIES = 20


def append_text(p: Any, text: str) -> None:
    """Append ``text`` to ``p``. Object stores cannot append: read, add, rewrite in one PUT — on S3
    a conditional PUT (If-Match the ETag read, If-None-Match for a new object), retried when another
    process wrote in between, so two tasks alerting at once both keep their line."""
    if is_local(p):
        Path(os.fspath(p)).parent.mkdir(parents=True, exist_ok=True)
        with open(os.fspath(p), "a", encoding="utf-8") as fh:
            fh.write(text)
        return
    target = getattr(p, "__wrapped__", p)  # an ObjectStoragePath proxies the UPath that does its I/O
    if "s3" not in _protocols(target.fs):
        # other stores: read, add, rewrite (a concurrent writer's line can be lost there)
        # bytes, not read_text: text mode would turn the file's \r\n into \n before it is rewritten
        old = p.read_bytes().decode("utf-8") if p.exists() else ""
        p.write_text(old + text, encoding="utf-8")
        return
    fs, key = target.fs, target.path
    for attempt in range(APPEND_TRIES):
        if attempt:  # lost a race: back off a little, at random, so the writers spread out
            time.sleep(random.uniform(0, min(0.01 * 2**attempt, 1.0)))
        try:
            etag = fs.info(key)["ETag"]
        except FileNotFoundError:
            try:
                fs.pipe_file(key, text.encode("utf-8"), mode="create")  # If-None-Match: *
                return
            except FileExistsError:
                continue  # another process created it first
        # the content read after the ETag: the PUT below succeeds only if neither changed since
        data = fs.cat_file(key) + text.encode("utf-8")
        try:
            fs.pipe_file(key, data, IfMatch=etag)
            return
        except OSError as e:
            if not _precondition_failed(e):
                raise
    raise OSError(f"{p}: {APPEND_TRIES} tries to append lost to other writers")


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _precondition_failed(error: OSError) -> bool:
    """s3fs raises an S3 412 (the object changed since its ETag was read) as a plain OSError."""
    cause = error.__cause__
    return getattr(cause, "response", {}).get("Error", {}).get("Code") == "PreconditionFailed"


def inbox_dir(client_id: str) -> UPath:
    """Where a client's CRM export and bought enrichment files are dropped."""
    return root() / "inbox" / client_id


def safe_run_id(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def run_dir(client_id: str, run_id: str) -> UPath:
    """Outputs of one run (summary, rejected rows, CRM import files, previews)."""
    return root() / "runs" / client_id / safe_run_id(run_id)


def reports_root(client_id: str) -> UPath:
    """Every report folder of a client (``<root>/reports/<client>/<run_id>/``)."""
    return root() / "reports" / safe_run_id(client_id)


def outbox_path(client_id: str) -> UPath:
    """The client's alert outbox (one JSON message per line) when no Slack is configured."""
    return root() / "outbox" / f"{client_id}.jsonl"
