#!/usr/bin/env bash
# Install the Debian packages given that are missing. Another apt or dpkg process holding the lock
# (unattended upgrades, a second set-up) is waited for, up to 15 minutes, instead of failing.
# Usage: tools/apt_install.sh PACKAGE...   (as root it installs; otherwise it says what to run and fails)
set -euo pipefail
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: run 'sudo apt-get install ${missing[*]}', then re-run make" >&2
    exit 1
fi
wait_for_lock=(-o DPkg::Lock::Timeout=900)
for attempt in $(seq 1 90); do
    apt-get "${wait_for_lock[@]}" update -qq && break
    [ "$attempt" -eq 90 ] && { echo "apt-get update kept failing" >&2; exit 1; }
    echo "apt-get update failed (another apt holds its lock?); retrying in 10 s" >&2
    sleep 10
done
DEBIAN_FRONTEND=noninteractive apt-get "${wait_for_lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${missing[*]}"
