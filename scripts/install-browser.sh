#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian packages `chromium` and
# `chromium-driver`) for the session-demo browser test, unless both are present.
#
#   bash scripts/install-browser.sh           # install if missing
#   source scripts/install-browser.sh; install_browser   # from another script
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"

install_browser() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  apt_install chromium chromium-driver
  chromium --version
  chromedriver --version
}

# Run directly: install. Sourced: only define the function.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  install_browser
fi
