"""Run a command and report its wall time and peak memory (RSS summed over its process tree).

Used by the benchmark scripts; never by the test suite.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import psutil


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss_mb: float
    returncode: int

    def row(self) -> str:
        return f"| {self.label} | {self.seconds:,.1f} s | {self.peak_rss_mb:,.0f} MB |"


def measure(label: str, cmd: list[str], env: dict | None = None, poll: float = 0.1) -> Measurement:
    """Run `cmd`, polling the RSS of it and all its descendants; raise if it fails."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(poll)
    m = Measurement(label, time.monotonic() - started, peak / 2**20, proc.returncode)
    print(m.row(), flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed with exit code {proc.returncode}: {' '.join(cmd)}")
    return m


def folder_size_mb(path) -> float:
    from pathlib import Path
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def report(text: str) -> None:
    """Print a benchmark's Markdown and append it to benchmarks/out/results.md."""
    from pathlib import Path

    print(text)
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    with open(out / "results.md", "a") as fh:
        fh.write(text)
