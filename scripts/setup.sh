#!/usr/bin/env bash
# Create .venv with Vestis and its dependencies, and fetch the model files. Safe to re-run.
#   PYTHON        interpreter to build the venv with (default: python3, needs 3.10+)
#   TORCH_SPEC    torch and torchvision requirements (default torch==2.14.1 torchvision==0.29.1: the
#                 registry's builds, which run on CPU and CUDA alike; a CPU-only torch wheel does not load
#                 the registry's torchvision, so the two are pinned as a pair)
#   TORCH_INDEX   optional extra index for torch, e.g. a CPU-only wheel index on laptops
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
if ! .venv/bin/python -c "import torch, torchvision.ops" 2>/dev/null; then
  # shellcheck disable=SC2086  # TORCH_SPEC is a list of requirements
  "${PIP[@]}" install -q ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} $TORCH_SPEC numpy 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import torch, torchvision.ops" || { echo "torch/torchvision failed to install" >&2; exit 1; }
fi
"${PIP[@]}" install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import vestis, pipelines, indexer, vision, configs" || { echo "vestis failed to install" >&2; exit 1; }
.venv/bin/vestis models fetch
