"""Real processes around a home folder, for the lock and crash tests.

- `holding(...)`: another process that holds flocks on lock files and/or a DuckDB connection
  (read-only, like an analyst, or read-write, like a dbt left running) until the test lets go.
  It uses fcntl and duckdb directly, not the pipeline's lock helper, so that it plays the part
  of any other process.
- `opte(...)` / `start_opte(...)`: the `opte` command line as a subprocess.
- `dbt_child(pid)`: the dbt process an `opte build` started.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_HOLDER = r"""
import fcntl, json, sys
spec = json.loads(sys.argv[1])
handles = []
import os
for path, shared in spec.get("flocks", []):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h = open(path, "a")
    fcntl.flock(h, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    handles.append(h)
if spec.get("duckdb"):
    import duckdb
    con = duckdb.connect(spec["duckdb"], read_only=spec.get("read_only", False))
    con.execute("select 1").fetchall()
for folder in spec.get("mkdirs", []):
    os.makedirs(folder, exist_ok=True)
print("ready", flush=True)
sys.stdin.read()  # hold everything until the test closes stdin (or the process is killed)
"""


@contextmanager
def holding(flocks: list[tuple[Path, bool]] = (), duckdb: Path | None = None, read_only: bool = False,
            mkdirs: list[Path] = ()):
    """A process holding `flocks` [(lock file, shared)] and, when given, a DuckDB connection."""
    spec = {"flocks": [(str(p), shared) for p, shared in flocks], "duckdb": str(duckdb) if duckdb else None,
            "read_only": read_only, "mkdirs": [str(m) for m in mkdirs]}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, json.dumps(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", "holder did not start"
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPTE_PSEUDO_KEY"}
    env.update({"OPTE_HOME": str(home), "OPTE_DUCKDB_MEMORY_LIMIT": "1GB", **extra})
    return env


def opte_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "measures.cli", *args]


def opte(home: Path, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(opte_cmd(*args), capture_output=True, text=True, env=env_for(home, **env),
                          cwd=REPO, timeout=timeout)


def start_opte(home: Path, *args: str, **env: str) -> subprocess.Popen:
    """`opte ARGS` in the background, in a session of its own (so the test can kill its group)."""
    return subprocess.Popen(opte_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_for(home, **env), cwd=REPO, start_new_session=True)


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def command(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """False once every thread of the process has exited (a zombie not yet reaped is dead: while
    its other threads still exit, the leader already shows Z, so each thread is looked at)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            return True
    return False


def dbt_child(pid: int, timeout: float = 60) -> int:
    """The dbt process started by `opte` process `pid` (waits for it to appear)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(pid):
            cmd = command(child)
            if "dbt" in cmd and "dies_with_parent" not in cmd:  # dbt itself (after the launcher's exec)
                return child
        time.sleep(0.1)
    raise AssertionError(f"no dbt child of pid {pid} after {timeout} s")


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def error_lines(stderr: str, command_name: str) -> list[str]:
    """The lines of stderr that are the command's own error message (`opte <command>: ...`)."""
    return [ln for ln in stderr.splitlines() if ln.startswith(f"opte {command_name}:")]
