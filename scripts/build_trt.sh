#!/usr/bin/env bash
# Build the TensorRT plans of a repository rendered with `--target tensorrt`.
#
#   .venv/bin/python scripts/build_model_repository.py --target tensorrt --out REPO
#   scripts/build_trt.sh REPO [--fp16]        # on the GPU host, e.g. inside the NGC
#                                             # tritonserver container (it ships trtexec)
#
# For every `<model>_<profile>_encoder/1/model.onnx` (the state-adapted graph the builder
# wrote) it runs trtexec with the shape profile in `trtexec_shapes.txt` and writes
# `1/model.plan`, which the config names. Plans are specific to the GPU and TensorRT version
# that built them: rebuild on each deployment target.
set -euo pipefail

repo="${1:?usage: build_trt.sh REPO [extra trtexec flags, e.g. --fp16]}"
shift
trtexec="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
if [ ! -x "$trtexec" ]; then
  echo "trtexec not found (set TRTEXEC=/path/to/trtexec)" >&2
  exit 1
fi

found=0
for onnx in "$repo"/*_encoder/1/model.onnx; do
  [ -e "$onnx" ] || continue
  found=1
  dir="$(dirname "$onnx")"
  shapes_file="$(dirname "$dir")/trtexec_shapes.txt"
  if [ ! -f "$shapes_file" ]; then
    echo "$shapes_file missing: was $repo rendered with --target tensorrt?" >&2
    exit 1
  fi
  # shellcheck disable=SC2046  # the file holds three whitespace-separated flags
  set -x
  "$trtexec" --onnx="$onnx" --saveEngine="$dir/model.plan" $(cat "$shapes_file") "$@"
  { set +x; } 2>/dev/null
done
if [ "$found" = 0 ]; then
  echo "no */_encoder/1/model.onnx under $repo" >&2
  exit 1
fi
