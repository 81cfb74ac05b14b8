#!/usr/bin/env bash
# Headless Chromium for the browser test of `gen fleet --html` (tests/support/browser.py), from
# Debian's packages. Does nothing when `chromium` is already on the PATH; needs root or sudo
# otherwise (and the Debian mirror: run it before the tests enter the offline namespace).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo_=""
[[ "$(id -u)" == 0 ]] || sudo_="sudo"
$sudo_ apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
