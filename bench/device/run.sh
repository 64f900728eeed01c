#!/usr/bin/env bash
# The wan-vace GPU benchmark on the lent GPU machine, in one call of at most 9 minutes:
#   1. install the carried wheels (bench/device/wheels.txt, from WHEELS=.whl) into a private site folder,
#   2. check that everything the benchmark imports is importable (the image's packages + the wheels),
#   3. run bench/gpu_render.py; each phase writes its JSON as it finishes, into RESULTS (default $OUT, else
#      bench/results), so a run killed at its limit keeps what it measured.
#
#   bash bench/device/run.sh --download       # here, with network: fetch the cp312 wheels into .whl/
#   bash bench/device/run.sh                  # there: the GPU benchmark (budget BUDGET_S, default 520 s)
#   bash bench/device/run.sh --smoke          # anywhere: the CPU smoke form (tiny config)
#
# Environment: PYTHON (default python3), WHEELS (default .whl), SITE (default /tmp/ray32-site), RESULTS, BUDGET_S.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/ray32-site}
BUDGET_S=${BUDGET_S:-520}
LIST=bench/device/wheels.txt
PINS=$(grep -v '^\s*#' "$LIST" | grep -v '^\s*$')

if [ "${1:-}" = "--download" ]; then
    exec "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" $PINS
fi
SMOKE=""
[ "${1:-}" = "--smoke" ] && SMOKE=--smoke

# 1. The carried wheels: exactly the pinned versions, one of each.
missing=""
for pin in $PINS; do
    name=${pin%%==*}; version=${pin##*==}
    stem=$(echo "$name" | tr 'A-Z-' 'a-z_')
    ls "$WHEELS"/ 2>/dev/null | tr 'A-Z' 'a-z' | grep -q "^${stem}-${version}-" || missing="$missing $pin"
done
if [ -n "$missing" ]; then
    echo "run.sh: carried wheels missing from $WHEELS:$missing (run: bash bench/device/run.sh --download)" >&2
    exit 3
fi
t0=$(date +%s)
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl || { echo "run.sh: installing the wheels failed" >&2; exit 3; }
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "run.sh: wheels installed in $(( $(date +%s) - t0 )) s"

# 2. Imports: the benchmark's whole chain, before any GPU work.
"$PYTHON" - <<'PY' || { echo "run.sh: import check failed" >&2; exit 4; }
import importlib
mods = ["torch", "transformers", "accelerate", "numpy", "cv2", "skimage", "tokenizers", "safetensors", "diffusers",
        "av", "pydantic", "ftfy", "requests", "PIL", "psutil", "ray32.engines.wan_vace", "ray32.engines.tiny_models",
        "ray32.request", "ray32.shot", "bench.machine"]
versions = {}
for m in mods:
    mod = importlib.import_module(m)
    versions[m] = getattr(mod, "__version__", "")
import torch
print("imports ok:", ", ".join(f"{k} {v}".strip() for k, v in versions.items() if v))
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY

# 3. The benchmark, inside the budget (its phases skip themselves when they would not fit).
RESULTS=${RESULTS:-${OUT:-bench/results}}
elapsed=$(( $(date +%s) - t0 ))
PYTHONUNBUFFERED=1 timeout $(( BUDGET_S + 30 - elapsed )) "$PYTHON" bench/gpu_render.py $SMOKE \
    --budget-s $(( BUDGET_S - elapsed )) --out-dir "$RESULTS"
