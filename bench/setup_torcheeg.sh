#!/usr/bin/env bash
# A separate environment with TorchEEG for bench/data_pipeline.py and bench/torcheeg_formats.py
# (it pins scipy<=1.10, which the project does not); tests/test_torcheeg_formats.py runs this
# where the environment is missing. torcheeg is installed without its declared dependencies
# (training frameworks its dataset classes never use) plus what its import actually needs.
set -euo pipefail
venv=${1:-.venv-torcheeg}
python3 -m venv "$venv"
# shellcheck source=scripts/installer.sh
source "$(dirname "$0")/../scripts/installer.sh"
installer "$venv"
"${install[@]}" -q "torch==${TORCH_VERSION:-2.13.0}"
"${install[@]}" -q --no-deps torcheeg==1.1.3
"${install[@]}" -q -c <(echo "torch==${TORCH_VERSION:-2.13.0}") einops lmdb mne \
  mne_connectivity networkx numpy pandas PyWavelets scikit-learn scipy spectrum tqdm wfdb xlrd \
  xmltodict
"$venv/bin/python" -c "from torcheeg.datasets import DEAPDataset; print('torcheeg ready')"
