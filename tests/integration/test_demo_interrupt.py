"""Ctrl-C during the loop's deploy: the demo says where it stopped and leaves no process behind.

A terminal's Ctrl-C sends SIGINT to the foreground process group: the demo and whatever runs in its
group (a training or monitoring job). Its model servers run in their own sessions, out of the
terminal's reach, so the demo must stop them itself, also one still starting in a rollout's thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


# `python -m tools.demo` with SIGINT as a terminal's foreground job has it. A shell without job control
# starts background commands (`.ci/run &`, nohup) with SIGINT ignored, which their children inherit, and
# Python then installs no KeyboardInterrupt handler: Ctrl-C could not be tested there.
AS_A_FOREGROUND_JOB = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('tools.demo', run_name='__main__', alter_sys=True)"
)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of the live processes that name ``text`` (every server and job names its folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue  # exited meanwhile
        if text in command and "zombie" not in state:
            found.append(f"{entry.name}: {command.strip()}")
    return found


def test_ctrl_c_during_the_deploy_stops_every_server_and_job_and_names_the_step(tmp_path: Path) -> None:
    if not (ROOT / "cdk.out" / "manifest.json").exists():
        pytest.fail("cdk.out holds no cloud assembly: run `make synth` (and `make pipeline-definition`) first")
    output = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-c", AS_A_FOREGROUND_JOB, "--quick", "--output", str(output)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "trigger started" in line:  # the deploy runs: dev's server is starting
                break
        else:
            pytest.fail("the demo ended before its deploy:\n" + "".join(lines[-20:]))
        deadline = time.monotonic() + 60
        while not any("ml_code.serve" in p for p in _processes_mentioning(str(output))):
            if time.monotonic() > deadline:
                pytest.fail("no model server started within 60 s of the deploy:\n" + "".join(lines[-20:]))
            time.sleep(0.1)
        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=180)
        lines.append(rest)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    text = "".join(lines)
    assert demo.returncode == 130, text[-3000:]
    assert "interrupted during 'deploy': stopping every process it started" in text
    leaked = _processes_mentioning(str(output))
    for process in leaked:  # not left running for the rest of the session when the test fails
        os.kill(int(process.split(":", 1)[0]), signal.SIGKILL)
    assert leaked == []
