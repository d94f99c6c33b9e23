#!/usr/bin/env bash
# Build KenLM's `lmplz` and `build_binary` (needed only by `bench lm train`) from the kenlm PyPI
# sdist, and install them into tools/kenlm-bin/ (git-ignored). About a minute on 2 cores.
#
#   bash tools/build_kenlm.sh            build unless tools/kenlm-bin/ already holds working binaries
#   bash tools/build_kenlm.sh --force    rebuild
#   KENLM_BIN_DIR=DIR bash tools/build_kenlm.sh     install somewhere else (then export KENLM_BIN=DIR)
#
# Why the sdist: the `kenlm` wheel only ships the Python query module; the estimation programs are
# C++ executables in the same source tree, version-pinned here to the module the scorer uses.
# Needs cmake, a C++ compiler, Boost (program_options, system, thread, test) and the zlib/bzip2/xz
# headers. As root the missing Debian packages are installed with apt-get; otherwise the script
# stops and prints the apt-get command to run.
set -euo pipefail

KENLM_VERSION="0.3.0"
DEB_PACKAGES=(build-essential cmake zlib1g-dev libbz2-dev liblzma-dev libboost-program-options-dev
  libboost-system-dev libboost-thread-dev libboost-test-dev)

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${KENLM_BIN_DIR:-$repo_root/tools/kenlm-bin}"
force=0
[ "${1:-}" = "--force" ] && force=1

log() { echo "[build_kenlm] $*" >&2; }

# `lmplz --help` exits non-zero; "working" means the binary runs and prints its usage text
# (a binary whose shared Boost libraries were removed fails to load and prints nothing useful).
works() {
  [ -x "$dest/lmplz" ] && [ -x "$dest/build_binary" ] || return 1
  # Capture first: with pipefail, `prog | grep -q` fails when grep exits early (SIGPIPE).
  local out
  out="$("$dest/lmplz" --help 2>&1 || true)"
  [[ "$out" == *"--order"* ]] || return 1
  out="$("$dest/build_binary" 2>&1 || true)"
  [[ "$out" == *"trie"* ]] || return 1
}

if [ "$force" = 0 ] && works; then
  log "lmplz and build_binary already work in $dest (use --force to rebuild)"
  exit 0
fi

# --- Debian build dependencies ---------------------------------------------------------------
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "missing build dependencies: ${missing[*]}"
    log "install them first:  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    log "(or install lmplz/build_binary another way and point \$KENLM_BIN at their directory)"
    exit 1
  fi
fi

# --- Source: the kenlm sdist from PyPI, through pip (honours the user's index configuration) ---
work="$(mktemp -d "${TMPDIR:-/tmp}/build_kenlm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "downloading the kenlm==$KENLM_VERSION sdist"
# `--no-binary kenlm` (not `:all:`): the sdist for kenlm itself, while pip may still use wheels for
# the build backend it needs to read the sdist's metadata. With `:all:` pip compiles cmake from
# source just to do that, which takes 10+ minutes.
python -m pip download --quiet --disable-pip-version-check --no-deps --no-binary kenlm \
  "kenlm==$KENLM_VERSION" -d "$work" >&2
tar -xzf "$work/kenlm-$KENLM_VERSION.tar.gz" -C "$work"

# --- Build only the two programs ------------------------------------------------------------------
log "building lmplz and build_binary (cmake, make -j2)"
mkdir -p "$work/build"
(
  cd "$work/build"
  cmake "$work/kenlm-$KENLM_VERSION" -DCMAKE_BUILD_TYPE=Release -DCOMPILE_TESTS=OFF \
    -DENABLE_PYTHON=OFF >cmake.log 2>&1 || { tail -30 cmake.log >&2; exit 1; }
  make lmplz build_binary -j"${KENLM_JOBS:-2}" >make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
)

# Install via a temporary directory and a rename so an interrupted build never leaves half a pair.
mkdir -p "$(dirname "$dest")"
staging="$(mktemp -d "$(dirname "$dest")/.kenlm-bin.XXXXXX")"
cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$staging/"
chmod 755 "$staging" "$staging/lmplz" "$staging/build_binary"
rm -rf "$dest"
mv "$staging" "$dest"

if ! works; then
  log "built, but $dest/lmplz or build_binary does not run"
  exit 1
fi
log "installed lmplz and build_binary (kenlm $KENLM_VERSION) into $dest"
