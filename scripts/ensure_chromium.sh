#!/bin/sh
# Browser tests drive Debian's headless Chromium. Install it when missing: with apt as root,
# otherwise unpack the Debian packages into .cache/chromium without root.
set -e
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then exit 0; fi
if [ -x .cache/chromium/usr/bin/chromium ] && [ -x .cache/chromium/usr/bin/chromedriver ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium and chromium-driver for the browser tests" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  echo "fetching Debian chromium into .cache/chromium (no root)" >&2
  mkdir -p .cache/chromium/debs && cd .cache/chromium/debs
  apt-get download chromium chromium-common chromium-driver >/dev/null
  for f in *.deb; do dpkg-deb -x "$f" ..; done
  exit 0
fi
echo "error: headless Chromium is needed for the browser tests: install Debian's chromium and chromium-driver" >&2
exit 1
