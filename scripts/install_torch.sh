#!/bin/sh
# Install torch the right way for this machine: the ordinary (CUDA) wheel where an NVIDIA GPU is
# present, the CPU-only wheel otherwise. An unpinned `pip install torch` on a CPU machine pulls a
# multi-GB CUDA build that it can never use.
set -e
PY=${1:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
    echo "torch $TORCH_VERSION already installed"
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "GPU found: installing torch==$TORCH_VERSION (CUDA build)"
    exec "$PY" -m pip install --quiet "torch==$TORCH_VERSION"
fi
echo "no GPU: installing the CPU build of torch==$TORCH_VERSION"
# A CPU wheel that pip can already see locally (find-links) is used first, its dependencies then
# come from the usual index; otherwise everything comes from the CPU index.
if "$PY" -m pip install --quiet --no-index --no-deps "torch==$TORCH_VERSION" 2>/dev/null; then
    exec "$PY" -m pip install --quiet "torch==$TORCH_VERSION"
fi
exec "$PY" -m pip install --quiet "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX"
