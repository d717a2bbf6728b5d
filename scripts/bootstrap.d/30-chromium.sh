#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (Playwright drives it;
# its own browser download cannot work offline). Safe to run again.
set -euo pipefail

if dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    echo "[30-chromium] chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -q -o DPkg::Lock::Timeout=600 update
apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends chromium
echo "[30-chromium] installed $(/usr/bin/chromium --version)"
