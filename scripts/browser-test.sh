#!/usr/bin/env bash
# The session-demo browser test on its own: installs Chromium if needed, then runs
# the test with the browser required (it fails, never skips). The screenshots are
# kept under target/tmp/session-demo-browser/.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/install-browser.sh
install_browser

export SESSION_TEST_REQUIRE="${SESSION_TEST_REQUIRE:+$SESSION_TEST_REQUIRE,}browser"
cargo test -p session-demo --test browser -- --nocapture
ls -l target/tmp/session-demo-browser/
