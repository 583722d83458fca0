#!/usr/bin/env bash
# The fast path's device measurements in one run (at most 10 minutes on one H100 or H200):
#   make gpu-wheels                    # here, once: .whl/ (pydantic, bitsandbytes, liger-kernel,
#                                      # deepspeed; 47 MB), carried to the device with the checkout
#   bash bench/gpu_all.sh              # on the device: installs .whl/ into /tmp/site, then runs
#                                      # bench/gpu_all.py (throughput plain vs fast vs peft+Trainer,
#                                      # pytest -m gpu, train / evaluate / predict on the GPU)
#   bash bench/gpu_all.sh --rehearse   # CPU rehearsal: the same steps at tiny sizes
# Writes $OUT/gpu_all.json and $OUT/gpu_all.md ($OUT: a new temp folder unless set).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
if [ "${1:-}" != "--rehearse" ] && compgen -G "$root/.whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$root"/.whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
cd "$root"
# The whole run inside the 10 minutes, whatever hangs.
timeout --signal=INT --kill-after=20 "${GPU_ALL_TIMEOUT_S:-570}" \
  "$python" bench/gpu_all.py --out "$out" "$@"
echo "gpu_all: $out/gpu_all.json, $out/gpu_all.md"
