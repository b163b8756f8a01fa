#!/usr/bin/env bash
# Install the Debian packages listed in tests/system/packages.txt, once.
# Without root or apt-get it says so in one line and installs nothing: the suites that
# need a missing part then skip, except under CI=true, where they fail.
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' packages.txt | grep -v '^$' || true)
[ "${#wanted[@]}" -eq 0 ] && exit 0
missing=()
for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "system packages not installed (needs root and apt-get): ${missing[*]}; their suites will skip" >&2
    exit 0
fi
echo "installing system packages for the test suites: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
