#!/usr/bin/env bash
# Provide Debian's Chromium for the browser tests (pytest -m browser), which drive the Dagster
# UI through Playwright with executable_path=/usr/bin/chromium (Playwright's own browser
# download needs the internet; the distribution's package only needs the apt mirror).
#
# Idempotent and non-interactive. It never fails the build: when Chromium cannot be installed
# (no root, no apt, no mirror), it says why and exits 0, and the browser tests skip.
set -uo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"  # overridable, for testing this script

say() { printf 'install-chromium: %s\n' "$*"; }

if [ -x "$CHROMIUM" ]; then
    say "already installed: $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get is not available (not Debian/Ubuntu); the browser tests will be skipped."
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        say "not root and no passwordless sudo; the browser tests will be skipped."
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTIONS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
say "installing Debian's chromium package (and fonts-liberation) ..."
if ! $SUDO apt-get update -q >/tmp/install-chromium.log 2>&1; then
    say "apt-get update failed (see /tmp/install-chromium.log); trying the cached lists."
fi
if ! $SUDO apt-get install "${APT_OPTIONS[@]}" --no-install-recommends chromium fonts-liberation \
        >>/tmp/install-chromium.log 2>&1; then
    say "apt-get install chromium failed; the browser tests will be skipped. Last lines:"
    tail -n 5 /tmp/install-chromium.log | sed 's/^/    /'
    exit 0
fi
if [ -x "$CHROMIUM" ]; then
    say "installed: $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
else
    say "the chromium package is installed but $CHROMIUM is missing; the browser tests will be skipped."
fi
exit 0
