#!/usr/bin/env bash
# apt_install [APT-OPTION...] PKG...: installs Debian packages without prompts,
# through sudo when not root. Sourced by the scripts that install what the tests need
# (scripts/install-browser.sh, scripts/test.sh); scripts/services.sh installs the
# servers itself, since it must also keep their init scripts from starting them.

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "== installing $* (apt-get)"
  $sudo apt-get update -qq
  # `env` so DEBIAN_FRONTEND reaches apt-get through sudo too.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
