#!/usr/bin/env bash
# Install the project on a fresh machine (Python 3.11, PyPI and Debian packages reachable).
#   bash tools/install.sh          the package and the `bench` command
#   bash tools/install.sh --dev    plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
if [ -n "$extras" ]; then bash tools/build_kenlm.sh; fi  # lmplz/build_binary for `bench lm train` and its tests
# Debian's Chromium, for the browser test of results/leaderboard.html (it skips, with a reason,
# where Chromium cannot be installed: not root, or no apt-get).
if [ -n "$extras" ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
      || echo "[install] chromium could not be installed: the leaderboard page test will skip"
  else
    echo "[install] optional: sudo apt-get install chromium (for the leaderboard page test)"
  fi
fi
