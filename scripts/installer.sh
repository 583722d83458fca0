# Sourced by scripts/install.sh and bench/setup_torcheeg.sh: `installer VENV` sets the array
# `install` to the command that installs packages into VENV.
# uv where it can be had: it downloads, unpacks and compiles bytecode in parallel (on the
# 2-core machine, 2026-12-07: `install.sh .venv dev` whole in 82 s in a fresh clone, beside
# TorchEEG's environment; with pip the dev install alone took 299 s and torch 87 s, while other
# jobs ran). pip for offline installs from a wheelhouse, with NO_UV=1, or
# where uv cannot be installed. uv reads no pip configuration, so pip's find-links folders (a
# local torch build, say) are passed on.
installer() {
  local venv=$1 uv=${UV:-} dir
  if [ -z "${WHEELHOUSE:-}" ] && [ -z "${NO_UV:-}" ]; then
    [ -n "$uv" ] || uv=$(command -v uv || true)
    if [ -z "$uv" ] && "$venv/bin/python" -m pip install -q --disable-pip-version-check uv; then
      uv=$venv/bin/uv
    fi
  fi
  if [ -z "$uv" ]; then
    install=("$venv/bin/python" -m pip install --disable-pip-version-check)
    [ -z "${WHEELHOUSE:-}" ] || install+=(--no-index --find-links "$WHEELHOUSE")
    return
  fi
  # Bytecode compiled here, as pip does: where PYTHONDONTWRITEBYTECODE is set, imports would
  # otherwise compile torch and transformers from source in every process.
  install=("$uv" pip install --compile-bytecode --python "$venv/bin/python")
  for dir in ${PIP_FIND_LINKS:-} $("$venv/bin/python" -m pip config get global.find-links 2>/dev/null || true); do
    [ -d "$dir" ] && install+=(--find-links "$dir")
  done
  return 0
}
