# Sourced by scripts/install.sh and bench/setup_torcheeg.sh: `installer VENV` sets the array
# `install` to the command that installs packages into VENV.
# uv where it can be had: it downloads and unpacks in parallel (on the 2-core machine, in a
# fresh clone's `make test` at 58e8038, 2026-12-08: `install.sh .venv dev` whole in 26 s, from
# the venv's creation to its stamp file, beside TorchEEG's environment; with pip the dev install
# alone took 299 s and torch 87 s, 2026-12-07, while other jobs ran). pip for offline installs
# from a wheelhouse, with NO_UV=1, or where uv cannot be installed. uv reads no pip
# configuration, so pip's find-links folders (a local torch build, say) are passed on.
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
  install=("$uv" pip install --python "$venv/bin/python")
  # Where PYTHONDONTWRITEBYTECODE is set, no import writes bytecode, and every process would
  # compile torch and transformers from source: compile it here, as pip does. Elsewhere each
  # module is compiled once, by the first process that imports it (the Makefile's way: compiling
  # all 16,800 files took 88 s of a fresh clone's `make test`, 2026-12-07, and most are never
  # imported).
  [ -z "${PYTHONDONTWRITEBYTECODE:-}" ] || install+=(--compile-bytecode)
  for dir in ${PIP_FIND_LINKS:-} $("$venv/bin/python" -m pip config get global.find-links 2>/dev/null || true); do
    [ -d "$dir" ] && install+=(--find-links "$dir")
  done
  return 0
}
