#!/usr/bin/env bash
# Quick start: set up, fetch the sample media, ingest it into the embedded store, show it, search it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/fetch_sample_media.py samples >/dev/null
.venv/bin/vestis ingest samples --data-dir vestis-data
.venv/bin/vestis status --data-dir vestis-data
.venv/bin/vestis search "person in black" --data-dir vestis-data --limit 5
