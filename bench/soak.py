"""Soak benchmark: the model server at saturation for a while, with data capture on, against capture off.

    .venv/bin/python bench/soak.py [--model-dir DIR] [--duration 60] [--sigterm-at 0.5]
                                   [--workers 2] [--threads 2] [--connections 8]

Three runs of ``python -m ml_code.serve`` with ``--workers`` workers on 127.0.0.1, each driven by
wrk with one-row CSV requests (every request carries a unique ``X-Amzn-SageMaker-Inference-Id``):

1. baseline: capture off, ``--duration`` seconds;
2. capture on, ``--duration`` seconds, then SIGTERM;
3. capture on, SIGTERM at ``--sigterm-at`` of the duration while wrk is still sending.

Each prints req/s, p50 and p99, wrk's errors, the workers' CPU time per request (user + system:
what other jobs on a shared machine inflate least), every worker's RSS at the start (after a 2 s
warm-up) and at the end and its largest sample in between, and the workers that restarted
(worker pids are sampled each second). With capture on it counts three things kept apart: the
requests wrk completed, the 200s the workers say they answered (each worker's last line on
stderr), and the records in the capture files, with their inferenceIds checked for duplicates.

Checks (exit 1 if one fails): runs 1 and 2 have 0 errors and 0 restarts; memory is flat (each
worker's end RSS within 5 % or 8 MiB of its start); records = answered, one per inferenceId;
wrk's completed requests <= answered <= completed + connections (wrk stops counting the requests
in flight when its time is up; after SIGTERM the server finishes those, so they are answered).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml_code.serving.readiness import free_port, wait_for_ping, wait_for_workers  # noqa: E402
from tools.sample_model import local_run_command  # noqa: E402

ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
STATS = re.compile(
    r"^capture: worker (\d+): (\d+) answered, (\d+) captured, (\d+) not sampled, (\d+) failed, (\d+) refused",
    re.M,
)
# A unique id per request (the wrk run's name from its arguments, the thread, a counter), and wrk's summary
# as one JSON line.
WRK_SCRIPT = (
    """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local prefix = "w"
local body = "ROW\\n"
function init(args)
  prefix = args[1] or "w"
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/invocations",
    {["Content-Type"] = "text/csv", ["X-Amzn-SageMaker-Inference-Id"] = prefix .. tid .. "-" .. counter}, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SOAK {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, '
    .. '"timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
).replace("ROW", ROW)


@dataclass
class Run:
    """What one run measured."""

    label: str
    wrk: dict = field(default_factory=dict)
    warmup_requests: int = 0
    rss_start: dict[int, float] = field(default_factory=dict)  # worker pid -> MiB
    rss_end: dict[int, float] = field(default_factory=dict)
    rss_peak: dict[int, float] = field(default_factory=dict)
    restarted: list[int] = field(default_factory=list)  # pids seen after the start that were not there at it
    cpu_seconds: float | None = None  # the workers' user + system CPU during the run (not the SIGTERM run)
    answered: int | None = None
    refused: int | None = None
    records: int | None = None
    duplicate_ids: int | None = None
    files: int | None = None
    workers_reporting: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.wrk["requests"] / (self.wrk["duration_us"] / 1e6)

    @property
    def errors(self) -> int:
        return sum(self.wrk[k] for k in ("connect", "read", "write", "status", "timeout"))


def _workers(server: int, workers: int) -> list[int]:
    """The server's worker processes: itself with one worker; with several, the supervisor's spawned children."""
    if workers == 1:
        return [server]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (what other jobs on the machine do not inflate)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else None


def _wrk(port: int, seconds: float, threads: int, connections: int, script: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/invocations",
            "--",
            name,  # the inferenceIds' prefix: warm-up and run never share an id
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wrk_result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=600)
    match = re.search(r"^SOAK (\{.*\})$", out, re.M)
    if match is None:
        raise RuntimeError(f"wrk gave no summary:\n{out}")
    return json.loads(match.group(1))


def _count_records(capture: Path) -> tuple[int, int, int]:
    """Records, inferenceIds seen more than once, and files, reading every line."""
    ids: Counter[str] = Counter()
    records = files = 0
    for path in sorted(capture.rglob("*.jsonl")):
        files += 1
        with path.open("rb") as handle:
            for line in handle:
                record = orjson.loads(line)  # a torn or interleaved line fails here
                records += 1
                ids[record["eventMetadata"]["inferenceId"]] += 1
    return records, sum(1 for n in ids.values() if n > 1), files


def soak(args: argparse.Namespace, work: Path, key: str, *, capture: bool, sigterm_at: float | None, label: str) -> Run:
    """One run: start the server, warm up, wrk for the duration (SIGTERM part-way if asked), stop, count."""
    run = Run(label)
    port = free_port()
    capture_dir = work / f"capture-{key}"
    command = [
        sys.executable,
        "-m",
        "ml_code.serve",
        "--model-dir",
        str(args.model_dir),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    if capture:
        command += ["--capture-dir", str(capture_dir), "--endpoint-name", "soak"]
    log = work / f"server-{key}.log"
    script = work / "soak.lua"
    script.write_text(WRK_SCRIPT)
    with log.open("w") as stderr:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for_ping(port, server, timeout=180)
        # /ping answers once one worker is up; wait for every worker (its "ready" line), or one takes it all.
        wait_for_workers(log, args.workers, server)
        # Warm-up: every worker past its first requests (the warm-up's records count like any other).
        run.warmup_requests = _wrk_result(_wrk(port, 2, args.threads, args.connections, script, "warm"))["requests"]
        pids = _workers(server.pid, args.workers)
        if len(pids) != args.workers:
            run.problems.append(f"found {len(pids)} worker processes, expected {args.workers}")
        for pid in pids:
            run.rss_start[pid] = run.rss_peak[pid] = _rss_mib(pid) or 0.0
        seen = set(pids)
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(1.0):
                for pid in _workers(server.pid, args.workers):
                    seen.add(pid)
                    rss = _rss_mib(pid)
                    if rss is not None:
                        run.rss_peak[pid] = max(run.rss_peak.get(pid, 0.0), rss)
                        run.rss_end[pid] = rss

        sampler = threading.Thread(target=sample, daemon=True)
        cpu_start = _cpu_seconds(pids)
        sampler.start()
        load = _wrk(port, args.duration, args.threads, args.connections, script, "run")
        if sigterm_at is not None:
            time.sleep(args.duration * sigterm_at)
            for pid in _workers(server.pid, args.workers):  # the last reading before the stop
                rss = _rss_mib(pid)
                if rss is not None:
                    run.rss_end[pid] = rss
            stop_sampling.set()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
            run.wrk = _wrk_result(load)
        else:
            run.wrk = _wrk_result(load)
            run.cpu_seconds = _cpu_seconds(pids) - cpu_start
            stop_sampling.set()
            sampler.join()
            for pid in _workers(server.pid, args.workers):
                rss = _rss_mib(pid)
                if rss is not None:
                    run.rss_end[pid] = rss
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        sampler.join()
        run.restarted = sorted(seen - set(pids))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    text = log.read_text()
    if "Traceback" in text:
        run.problems.append(f"a traceback in the server's log ({log})")
    if capture:
        stats = [tuple(map(int, m.groups())) for m in STATS.finditer(text)]
        run.workers_reporting = len(stats)
        run.answered = sum(s[1] for s in stats)
        run.refused = sum(s[5] for s in stats)
        run.records, run.duplicate_ids, run.files = _count_records(capture_dir)
        shutil.rmtree(capture_dir, ignore_errors=True)
    _check(run, args, sigterm=sigterm_at is not None, capture=capture)
    return run


def _check(run: Run, args: argparse.Namespace, *, sigterm: bool, capture: bool) -> None:
    if not sigterm and run.errors:
        run.problems.append(f"{run.errors} errors")
    if sigterm and run.wrk["status"]:
        run.problems.append(f"{run.wrk['status']} non-2xx answers")
    if run.restarted:
        run.problems.append(f"workers restarted: {run.restarted}")
    for pid, start in run.rss_start.items():
        end = run.rss_end.get(pid, start)
        if end - start > max(8.0, 0.05 * start):
            run.problems.append(f"worker {pid} grew from {start:.1f} to {end:.1f} MiB")
    if not capture:
        return
    if run.workers_reporting != args.workers:
        run.problems.append(f"{run.workers_reporting} of {args.workers} workers reported their capture at shutdown")
    if run.records != run.answered:
        run.problems.append(f"{run.records} records for {run.answered} answered requests")
    if run.duplicate_ids:
        run.problems.append(f"{run.duplicate_ids} inferenceIds captured more than once")
    if run.refused:
        run.problems.append(f"{run.refused} requests refused")
    if run.files is not None and run.files > args.workers:
        run.problems.append(f"{run.files} capture files for {args.workers} workers")
    # wrk's completed requests (warm-up and run) were all answered; the workers may have answered up to one
    # more per connection and wrk run: those in flight when wrk's time was up, which wrk does not count.
    completed = run.warmup_requests + run.wrk["requests"]
    answered = run.answered or 0
    if not completed <= answered <= completed + 2 * args.connections:
        run.problems.append(f"wrk completed {completed} (warm-up included) but the workers answered {answered}")


def _report(runs: list[Run], args: argparse.Namespace) -> None:
    print(
        f"\none-row text/csv, wrk -t{args.threads} -c{args.connections}, {args.duration:g} s per run, "
        f"{args.workers} workers; RSS after a 2 s warm-up and at the end"
    )
    for run in runs:
        print(f"\n  {run.label}")
        print(
            f"    {run.rps:9.1f} req/s  p50 {run.wrk['p50_us'] / 1000:6.2f} ms  "
            f"p99 {run.wrk['p99_us'] / 1000:6.2f} ms  wrk: {run.wrk['requests']} completed, "
            f"errors connect {run.wrk['connect']} read {run.wrk['read']} write {run.wrk['write']} "
            f"status {run.wrk['status']} timeout {run.wrk['timeout']}"
        )
        if run.cpu_seconds is not None:
            print(
                f"    server CPU: {run.cpu_seconds:.1f} s for {run.wrk['requests']} requests = "
                f"{run.cpu_seconds / max(1, run.wrk['requests']) * 1e6:.0f} us per request (workers' user + system)"
            )
        for pid, start in sorted(run.rss_start.items()):
            end = run.rss_end.get(pid, start)
            print(
                f"    worker {pid}: RSS {start:6.1f} -> {end:6.1f} MiB ({end - start:+.1f}), "
                f"peak {run.rss_peak.get(pid, start):6.1f} MiB"
            )
        print(f"    worker restarts: {len(run.restarted)}")
        if run.answered is not None:
            # The warm-up's requests are answered and captured too: they are in both counts, not in wrk's.
            print(
                f"    capture: wrk completed {run.warmup_requests} + {run.wrk['requests']} (warm-up + run), "
                f"the workers answered {run.answered}, {run.records} records in {run.files} files, "
                f"{run.duplicate_ids} duplicated inferenceIds, {run.refused} refused"
            )
        print(f"    {'OK' if not run.problems else 'FAILED: ' + '; '.join(run.problems)}")
    base = runs[0]
    for run in runs[1:]:
        if "SIGTERM" not in run.label:
            per_request = [r.cpu_seconds / max(1, r.wrk["requests"]) * 1e6 for r in (run, base) if r.cpu_seconds]
            cpu = (
                f", {per_request[0]:.0f} against {per_request[1]:.0f} us CPU per request"
                if len(per_request) == 2
                else ""
            )
            print(
                f"\n  capture on / off: {run.rps / base.rps:.3f}x the throughput, "
                f"p99 {run.wrk['p99_us'] / 1000:.2f} ms against {base.wrk['p99_us'] / 1000:.2f} ms{cpu} "
                "(CPU per request is what load from other jobs does not inflate)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--sigterm-at", type=float, default=0.5, help="fraction of the duration (third run)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if not 0 < args.sigterm_at < 1:
        print("error: --sigterm-at is a fraction of the duration, between 0 and 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model_dir is None:
            subprocess.run(
                local_run_command(work / "run"),
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            args.model_dir = work / "run" / "model"
        args.model_dir = args.model_dir.resolve()
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        runs = [
            soak(args, work, "off", capture=False, sigterm_at=None, label="baseline: capture off"),
            soak(args, work, "on", capture=True, sigterm_at=None, label="capture on"),
            soak(
                args,
                work,
                "sigterm",
                capture=True,
                sigterm_at=args.sigterm_at,
                label=f"capture on, SIGTERM at {args.sigterm_at * args.duration:g} s while wrk sends",
            ),
        ]
        _report(runs, args)
        print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if any(run.problems for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
