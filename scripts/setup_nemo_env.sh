#!/usr/bin/env bash
# Creates .venv-nemo: NeMo for export, training and the parity tests. Kept apart from the serving
# environment because the serving path never imports torch. torch is pinned to 2.13.0: that is
# the local CPU wheel; any other version pulls gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv-nemo/bin/python ] && .venv-nemo/bin/python -c "import nemo.collections.asr, av" 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv-nemo
constraints="$(mktemp)"
echo "torch==2.13.0" > "$constraints"
.venv-nemo/bin/pip install -q --upgrade pip
.venv-nemo/bin/pip install -q -c "$constraints" torch==2.13.0 "nemo_toolkit[asr]==3.0.0" onnx onnxruntime sentencepiece av
rm -f "$constraints"
