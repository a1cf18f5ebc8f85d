"""The home folder's locks, in one place: who may change the lake, write the warehouse, publish.

| lock file | taken exclusive by | taken shared by |
|---|---|---|
| `<home>/.lake.lock` | `opte land` (one landing at a time) | `opte build`, for the whole build: the lake it reads cannot change under it |
| `<home>/.warehouse.lock` | `opte build` (and every dbt process of the DAG, scripts/dbt_locked.sh) | `opte publish`: it waits for a running build rather than failing |
| `<home>/publish/.publish.lock` | `opte publish` (one swap at a time) | - |

A lock is `flock(2)` on its file: the kernel drops it when the holder dies, so no lock outlives
its process. A process that has to wait says so in one line naming the holders (pid and
command, from `/proc/locks`) and then waits: a live holder is usually a build or a landing
doing its job; one that is stuck is the process to stop. Order: the warehouse lock before the
lake lock (a build takes both), never the other way round, so the locks cannot deadlock.

Within a thread the locks are re-entrant: a function that needs a lock its caller already holds
(e.g. `run_dbt` inside `build`) takes it again for free. Asking for an exclusive lock while
holding it shared is a programming error.

`holders(path)` also names processes holding POSIX locks on a file we do not lock ourselves:
DuckDB's own lock on `warehouse.duckdb` (a writer holds it WRITE, a read-only connection READ).
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("opte.locks")

LAKE_LOCK = ".lake.lock"
WAREHOUSE_LOCK = ".warehouse.lock"
PUBLISH_LOCK = ".publish.lock"  # under <home>/publish/

_held = threading.local()  # path -> [shared: bool, depth: int] for this thread


@dataclass(frozen=True)
class Holder:
    """A process holding a lock on a file (one line of /proc/locks)."""

    pid: int
    command: str
    mode: str  # READ (shared) or WRITE (exclusive)

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def command_of(pid: int, limit: int = 160) -> str:
    """The command line of a process, shortened; `?` when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(raw.replace(b"\0", b" ").decode("utf-8", "replace").split()) or "?"  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def holders(path: Path) -> list[Holder]:
    """The processes holding a lock on `path` (flock or POSIX), this process excluded; [] where
    the system does not tell (no /proc/locks) or nobody holds one. Waiters are not holders."""
    try:
        st = os.stat(path)
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    found: dict[int, Holder] = {}
    for line in text.splitlines():
        # "12: FLOCK  ADVISORY  WRITE 4242 fe:00:2281243 0 EOF"; a waiter reads "12: -> FLOCK ..."
        parts = line.split()
        if len(parts) < 6 or parts[1] == "->":
            continue
        try:
            pid = int(parts[4])
            major, minor, inode = parts[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
        except ValueError:
            continue
        if key == wanted and pid > 0 and pid != os.getpid() and pid not in found:
            found[pid] = Holder(pid, command_of(pid), parts[3])
    return sorted(found.values(), key=lambda h: h.pid)


def describe(found: list[Holder]) -> str:
    return ", ".join(map(str, found)) if found else "another process (it could not be named)"


def _registry() -> dict[str, list]:
    if not hasattr(_held, "locks"):
        _held.locks = {}
    return _held.locks


def held(path: Path, exclusive: bool = False) -> bool:
    """True when this thread holds the lock on `path` (exclusively, when asked)."""
    entry = _registry().get(str(Path(path).resolve()))
    return entry is not None and (not exclusive or not entry[0])


@contextmanager
def hold(path: Path, *, shared: bool, who: str, why: str):
    """Hold the flock on `path` (shared or exclusive) for the block; wait for it if need be.

    `who` names us in the wait message ("opte build"), `why` says what the holders are doing
    that we wait for ("a landing is changing the lake").
    """
    path = Path(path).resolve()
    key = str(path)
    registry = _registry()
    if key in registry:
        if registry[key][0] and not shared:
            raise RuntimeError(f"{who}: cannot take {path} exclusively while holding it shared")
        registry[key][1] += 1
        try:
            yield
        finally:
            registry[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            found = holders(path)
            stop = " or ".join(f"kill {h.pid}" for h in found) or "stop it"
            log.warning("%s waits for %s: %s (%s); it goes on by itself when that finishes "
                        "(if that process is stuck, stop it: %s)", who, describe(found), why, path, stop)
            started = time.monotonic()
            fcntl.flock(handle, mode)
            log.info("%s: %s is free after %.0f s, going on", who, path.name, time.monotonic() - started)
        registry[key] = [shared, 1]
        try:
            yield
        finally:
            del registry[key]
            fcntl.flock(handle, fcntl.LOCK_UN)


def lake_lock(home: Path, *, shared: bool, who: str):
    """Exclusive for landing (it changes the lake), shared for a build (it reads a fixed lake)."""
    why = ("a build reads the lake or another landing changes it; landing waits so that a build sees one "
           "fixed set of extracts" if not shared else
           "a landing is changing the lake; the build waits to read it once that landing is committed")
    return hold(Path(home) / LAKE_LOCK, shared=shared, who=who, why=why)


def warehouse_lock(home: Path, *, shared: bool, who: str):
    """Exclusive for a build (the only writer of warehouse.duckdb), shared for a publisher (a reader)."""
    why = ("the warehouse is being built" if shared else
           "the warehouse is being built or read by a publisher; one build at a time, after the readers")
    return hold(Path(home) / WAREHOUSE_LOCK, shared=shared, who=who, why=why)


def publish_lock(home: Path, *, who: str = "opte publish"):
    """One publisher at a time per home (the swap reads and replaces the previous publication)."""
    from measures.config import publish_dir

    return hold(publish_dir(Path(home)) / PUBLISH_LOCK, shared=False, who=who,
                why="another publication is being written")


def reads_warehouse(who: str):
    """Decorator for `func(home, ...)`: run it holding the warehouse lock shared, so that a reader
    such as a publisher waits for a running build (saying so) instead of failing on DuckDB's
    lock, and reads the warehouse and the build record of one and the same build."""
    import functools

    def decorate(func):
        @functools.wraps(func)
        def wrapper(home, *args, **kwargs):
            with warehouse_lock(Path(home), shared=True, who=who):
                return func(home, *args, **kwargs)
        return wrapper

    return decorate
