#!/bin/sh
# Installs Debian's chromium and chromium-driver when we may (root + apt); otherwise browser tests skip.
set -u
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped"
else
  echo "note: chromium/chromedriver not installed (needs root + apt); browser tests will be skipped"
fi
