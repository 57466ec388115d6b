#!/usr/bin/env bash
# Installs the Debian 12 packages attesta needs to build and test, when missing.
set -euo pipefail

PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libssl-dev libcbor-dev libjwt-dev libcjson-dev libevent-dev libyaml-dev
      libsqlite3-dev sqlite3 libpq-dev postgresql libcurl4-openssl-dev libcmocka-dev
      python3 python3-cryptography curl
      lego uacme certbot pebble)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "attesta: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
