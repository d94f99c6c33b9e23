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
