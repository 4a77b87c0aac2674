#!/usr/bin/env bash
# Headless Chromium and its WebDriver (Debian packages) for tests/email/test_dashboard.py, which
# drives the email dashboard in a real browser through selenium (installed from PyPI).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
echo "installing chromium and chromium-driver (Debian packages) for the dashboard browser test"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# fonts-dejavu-core: readable text in screenshots (no font package may be installed otherwise)
apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
exit 0
