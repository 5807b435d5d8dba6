"""CPU time of processes and threads read from ``/proc`` for the throughput benchmark
(``benchmarks.bench_throughput``): a table of every process (``_proc_table``), a process's busiest
threads (``thread_cpu``), a process's role in a pipeline run (``role``) and ``TreeSampler``, which samples
a run's whole process tree from a thread (the streaming and scaling parts). ``bench_throughput``
re-exports every name.
"""
from __future__ import annotations

import os
import threading
import time

from benchmarks.throughput_common import BUSY, CLK

__all__ = ["_proc_table", "thread_cpu", "role", "TreeSampler"]


# --------------------------------------------------------------------------- process CPU from /proc


def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds (user + system), short command) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK, cmd)
    return out


def thread_cpu(pid: int, top: int = 6) -> list[tuple[str, float]]:
    """CPU seconds of a process's busiest threads: (name, CPU s), largest first."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out.append((stat[stat.index("(") + 1:stat.rindex(")")], (int(fields[11]) + int(fields[12])) / CLK))
    return sorted(out, key=lambda x: -x[1])[:top]


def role(cmd: str) -> str:
    if "sdk_worker_main" in cmd or "worker_pool_main" in cmd:
        return "SDK worker"
    if "csadetect.pipelines.detect" in cmd or "--child detect-" in cmd:
        return "pipeline (runner)"
    return cmd.split()[0].rsplit("/", 1)[-1] if cmd else "?"


class TreeSampler:
    """CPU seconds of a process and all its descendants, sampled from /proc every ``every`` s by a
    thread (a descendant's CPU stays counted after it exits: its last sample is kept)."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every = pid, every
        self.last: dict[int, tuple[float, str]] = {}  # pid -> (cpu s, role)
        self.timeline: list[tuple[float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.perf_counter()

    def sample(self) -> float:
        procs = _proc_table()
        tree, frontier = set(), {self.pid}
        while frontier:
            tree |= frontier
            frontier = {p for p, (pp, _, _) in procs.items() if pp in frontier} - tree
        now = {p: procs[p][1] for p in tree if p in procs}
        with self._lock:
            for p, cpu in now.items():
                self.last[p] = (cpu, self.last[p][1] if p in self.last else role(procs[p][2]))
            self.timeline.append((time.perf_counter() - self.t0, dict(now)))
            return sum(c for c, _ in self.last.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def per_process(self) -> list[dict]:
        return [{"pid": p, "role": r, "cpu": c} for p, (c, r) in sorted(self.last.items())]

    def compact(self, step: float = 1.0) -> list:
        """[seconds since start, [CPU s of each process of the run, in pid order]] about every ``step`` s."""
        pids = sorted(self.last)
        out, next_t, seen = [], 0.0, {}
        for t, cpu in self.timeline:
            seen.update(cpu)  # a process that has exited keeps its last value
            if t >= next_t:
                out.append([round(t, 1), [round(seen.get(p, 0.0), 2) for p in pids]])
                next_t = t + step
        return out

    def overlap(self, pids: list[int]) -> dict:
        """Seconds during which 0, 1, 2 ... of ``pids`` each used more than BUSY of a core."""
        busy: dict[int, float] = {}
        for (t0, a), (t1, b) in zip(self.timeline, self.timeline[1:]):
            dt = t1 - t0
            if dt <= 0:
                continue
            k = sum(1 for p in pids if p in a and p in b and (b[p] - a[p]) / dt > BUSY)
            busy[k] = busy.get(k, 0.0) + dt
        return busy
