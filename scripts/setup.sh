#!/usr/bin/env bash
# Create .venv with Vestis and its dependencies, and fetch the model files. Safe to re-run.
#   PYTHON        interpreter to build the venv with (default: python3, needs 3.10+)
#   TORCH_SPEC    torch requirement (default torch==2.13.0: the CPU wheel where pip's local wheel
#                 folder has it, the registry's CUDA build elsewhere)
#   TORCH_INDEX   optional extra index for torch, e.g. a CPU-only wheel index on laptops
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install -q ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$TORCH_SPEC" numpy 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import torch" || { echo "torch failed to install" >&2; exit 1; }
fi
"${PIP[@]}" install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import vestis, pipelines, indexer, vision, configs" || { echo "vestis failed to install" >&2; exit 1; }
.venv/bin/vestis models fetch
