#!/usr/bin/env bash
# One command for a lent GPU machine (no internet, no package index): install the
# wheels carried in .devwheels/ (diffusers, open_clip_torch, skorch, mne, braindecode
# and their small dependencies missing there), print versions, run the GPU check.
# Writes benchmarks/GPU_RESULTS.md and, if $OUT is set, $OUT/GPU_RESULTS.md.
# Usage, from the repository root: bash benchmarks/run_gpu_check.sh [--quick]
set -x
cd "$(dirname "$0")/.."
nvidia-smi || true
python3 --version
# Into a folder of their own, first on PYTHONPATH: works with a system Python too
# (no "externally managed environment"), and leaves the machine's packages alone.
deps="${TMPDIR:-/tmp}/mne-synapse-gpu-deps"
if ls .devwheels/*.whl >/dev/null 2>&1; then
    python3 -m pip install --no-deps --no-index --quiet --target "$deps" .devwheels/*.whl || exit 1
fi
export PYTHONPATH="$PWD:$deps${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, diffusers, accelerate, open_clip, skorch, mne, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'diffusers', diffusers.__version__, 'accelerate', accelerate.__version__, 'open_clip', open_clip.__version__, 'transformers', transformers.__version__)" || exit 1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
out="${OUT:-benchmarks}"
mkdir -p "$out"
python3 -m benchmarks.gpu_check --out "$out/GPU_RESULTS.md" "$@" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
