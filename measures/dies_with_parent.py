"""Run a command that dies with the process that started it: `python -m measures.dies_with_parent PPID CMD...`.

`opte build` starts dbt through this launcher. It asks Linux to SIGKILL it when its parent dies
(`prctl(PR_SET_PDEATHSIG)`, which survives the `exec` below), checks that the parent `PPID` is
still there (it may have died before the request was made), then replaces itself with `CMD`.
So a build killed in any way (SIGKILL of the `opte` process alone included) never leaves a dbt
holding DuckDB's lock on the warehouse. dbt also stays in opte's process group, so Ctrl-C or a
kill of the group reaches it directly.

Why not `preexec_fn`: it is unsafe in a process with threads (Airflow's task runner has some);
why not dbt in-process (`dbtRunner`): each build keeps a clean dbt state and its own environment.
Where `prctl` is unavailable (not Linux) the command simply runs.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(137)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
