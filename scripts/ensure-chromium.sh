#!/usr/bin/env bash
# Sourced by the test script: Debian's chromium, the real browser ReportTests renders the
# results report in (headless: console errors, every plot drawn, a screenshot). Installed when
# missing and the script can (root, apt); otherwise the message says how, and the render test
# skips unless HPTHAMMER_REQUIRE_TOOLS=1 (set by the test script when it runs as root).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    ({ apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends chromium >/dev/null) ||
      echo "hpthammer: could not install chromium; the report's browser test cannot run" >&2
  else
    echo "hpthammer: no /usr/bin/chromium: sudo apt-get install chromium (the report's browser test skips)" >&2
  fi
fi
