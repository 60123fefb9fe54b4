"""Synth benchmark: the whole platform (3 environments, 3 cdk-nag packs) against a one-stack reference app.

    .venv/bin/python bench/synth_time.py [--rounds N]

Both run through the pinned CDK CLI, alternately, in the same session, so machine noise
hits both alike. The platform turns CDK's built-in CloudFormation validation off (cfn-lint
gates the templates in ``make test`` instead); the reference is a default app, so it is
also timed without that validation, for a like-for-like ratio. Prints each side's median
and min wall time and the ratio of medians.
Goal: ratio <= 1.5. (The Workload Orchestrator's single-environment synth, without any
pack, measured 2.1x on this kind of machine.)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CDK = str(ROOT / "node_modules" / ".bin" / "cdk")
PYTHON = sys.executable


def _synth(app_command: str | None, outdir: Path, *, builtin_validation: bool = True) -> float:
    cmd = [CDK, "synth", "--no-notices", "--quiet", "-o", str(outdir)]
    if app_command:
        cmd += ["--app", app_command]
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    if not builtin_validation:
        env["CDK_VALIDATION"] = "false"
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    shutil.rmtree(outdir, ignore_errors=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    platform_times: list[float] = []
    reference_times: list[float] = []
    bare_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _synth(None, out / "warmup")  # first run pays for cold file caches
        for _ in range(args.rounds):
            reference_times.append(_synth(f"{PYTHON} bench/reference_app.py", out / "ref"))
            platform_times.append(_synth(None, out / "platform"))
            bare_times.append(_synth(f"{PYTHON} bench/reference_app.py", out / "bare", builtin_validation=False))
    ref, plat = statistics.median(reference_times), statistics.median(platform_times)
    bare = statistics.median(bare_times)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"rounds: {args.rounds}, alternating")
    # What a user waits for first; then the like-for-like comparison (both without CDK's built-in
    # validation, which the platform replaces with cfn-lint), then the ratio against CDK's defaults.
    print(f"platform synth (3 environments, 3 packs): median {plat:6.2f} s  min {min(platform_times):6.2f} s")
    print(f"reference without CDK's built-in validation: median {bare:6.2f} s  min {min(bare_times):6.2f} s")
    print(f"reference with CDK's defaults:            median {ref:6.2f} s  min {min(reference_times):6.2f} s")
    print(f"like for like, platform/reference (both without validation): {plat / bare:.2f}x")
    print(f"platform/reference with CDK's defaults: {plat / ref:.2f}x  (Workload Orchestrator 2.1x without packs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
