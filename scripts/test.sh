#!/usr/bin/env bash
# Set up and run the whole test suite (tests that need ../shared/data skip when it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
