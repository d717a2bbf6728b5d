#!/usr/bin/env bash
# Installs what conveyor's full test suite needs on a fresh Debian machine (run as root):
# MariaDB, PostgreSQL, Docker, a registry, mmdebstrap, SeaweedFS, and nox + uv.
# Idempotent: a second run changes nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for part in "$here"/bootstrap.d/*.sh; do
    echo "bootstrap: ${part##*/}"
    bash "$part"
done
python -m pip install --quiet --disable-pip-version-check "nox>=2025.5" "uv>=0.8"
