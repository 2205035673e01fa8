#!/usr/bin/env bash
# Streaming (through the service) vs offline (NeMo) WER of one checkpoint, on the same utterances.
#
#   scripts/compare_streaming_offline.sh CHECKPOINT.nemo [--limit N] [--set S] [--latency la13] [--keep DIR]
#
# Exports CHECKPOINT to a temporary folder (never into models/), serves it on a free port with a
# temporary model repository (eval_service.py --serve), streams the sets, runs eval_offline.py on
# the same --limit selection with the same look-ahead, and prints both WERs side by side.
# Defaults: --limit 40, --set all, --latency la13. Reports stay in --keep DIR when given.
# Exit status: 0 when streaming is within 1 WER point of offline on every set, 1 when not,
# anything else when a step failed.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
[[ $# -ge 1 ]] || usage
case "$1" in -h|--help) usage 0 ;; esac
CKPT=$(realpath "$1"); shift
LIMIT=40 SET=all LATENCY=la13 KEEP=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --limit) LIMIT=$2; shift 2 ;;
    --set) SET=$2; shift 2 ;;
    --latency) LATENCY=$2; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
WORK=$(mktemp -d /tmp/ddx_compare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Snapshot first: training may overwrite best.nemo while we work.
cp "$CKPT" "$WORK/model.nemo"
echo "== export $CKPT ($(sha256sum "$WORK/model.nemo" | cut -c1-12)) -> $WORK/export" >&2
.venv-nemo/bin/python scripts/export_nemo.py "$WORK/model.nemo" --out "$WORK/export" \
  --name embedded --language en > "$WORK/export.log" 2>&1 || { tail -30 "$WORK/export.log" >&2; exit 3; }

echo "== streaming (service, $LATENCY)" >&2
rc=0
.venv/bin/python scripts/eval_service.py --serve "$WORK/export" --set "$SET" --limit "$LIMIT" \
  --latency "$LATENCY" --report "$WORK/streaming.json" --show 0 > "$WORK/streaming.md" || rc=$?
[[ $rc -eq 0 || $rc -eq 2 ]] || exit 3   # 2: some utterances failed; they are in the report

echo "== offline (NeMo, $LATENCY)" >&2
.venv-nemo/bin/python scripts/eval_offline.py --model "$WORK/model.nemo" --set "$SET" --limit "$LIMIT" \
  --latency "$LATENCY" --report "$WORK/offline.json" --show 0 > "$WORK/offline.md"

echo
echo "## Streaming"; cat "$WORK/streaming.md"
echo
echo "## Offline"; grep -v '^\[NeMo ' "$WORK/offline.md"  # NeMo logs to stdout
echo
echo "## Streaming vs offline ($CKPT)"
rc=0
.venv/bin/python scripts/eval_common.py compare "$WORK/streaming.json" "$WORK/offline.json" || rc=$?
if [[ -n "$KEEP" ]]; then
  mkdir -p "$KEEP" && cp "$WORK"/streaming.json "$WORK"/offline.json "$WORK"/*.md "$KEEP"/
  echo "reports kept in $KEEP" >&2
fi
exit $rc
