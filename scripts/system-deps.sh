#!/usr/bin/env bash
# Installs the programs the tests start as real servers or clients, when they are missing:
# node + npm (the Node SDK test), redis-server, prometheus + promtool, chromium (status page),
# a C compiler (the detector's optional speed-up, proxy/detect/_sums.c).
set -euo pipefail
need=()
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
command -v cc >/dev/null || need+=(gcc)
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
# Chinese glyphs in the status page's screenshot (docs/status-page.png)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing: ${need[*]} (install them with apt-get, or run as root)" >&2
  exit 1
fi
apt-get update -q && apt-get install -y -q "${need[@]}"
