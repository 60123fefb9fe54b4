#!/usr/bin/env bash
# The comparison tools of bench/monitor.py (evidently, whylogs) in their own venv, .venv-bench:
# they pin pandas < 3 and many other packages that must stay out of .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
python3.11 -m venv .venv-bench
.venv-bench/bin/pip install --quiet -r bench/requirements.txt
.venv-bench/bin/pip check
