#!/usr/bin/env bash
# Debian's headless Chromium (and its driver) for the end-to-end browser test; Playwright's own browser
# download is not reachable here. Idempotent: does nothing when chromium is already installed. Run as root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core
command -v chromium
