#!/usr/bin/env bash
# Debian packages the tests use for real: Chromium (browser test; Playwright's own browser download is not
# reachable here), Tesseract (burned-in text), Orthanc + its DICOMweb plugin (PACS), PostgreSQL and nginx
# (replicas). Tests start each server themselves on a free loopback port with a temporary folder; the
# packages' own system services are stopped and disabled here so nothing listens beyond what a test starts.
# Idempotent: installs only what is missing. Run as root (or with sudo).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
PACKAGES=(chromium chromium-driver fonts-dejavu-core tesseract-ocr tesseract-ocr-eng orthanc orthanc-dicomweb
          postgresql nginx-light)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "system packages already installed"
    exit 0
fi
# Package scripts must not start their services (no init system here, and tests start their own instances).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
