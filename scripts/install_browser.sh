#!/usr/bin/env bash
# Install Debian's Chromium for the real-browser tests (tests/browser). Safe to re-run: returns at
# once when /usr/bin/chromium is already there.
#   --driver      also install chromium-driver (chromedriver, for Selenium-style tools; Playwright,
#                 which the tests use, does not need it)
# Playwright drives this browser through executable_path: its own browser download comes from a
# CDN that CI cannot reach, while Debian's mirrors are reachable. Needs root (or password-less
# sudo), apt-get and the network; exits non-zero saying which of them is missing.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver
packages=()
[ -x "$CHROMIUM" ] || packages+=(chromium fonts-liberation)  # fonts: readable, stable screenshots
if [ "${1:-}" = "--driver" ]; then
  [ -x "$DRIVER" ] || packages+=(chromium-driver)
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--driver]" >&2
  exit 2
fi
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi

fail() {
  echo "install_browser.sh: cannot install ${packages[*]}: $*" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available (not a Debian-like system); \
install Chromium yourself and point VESTIS_CHROMIUM at it"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    fail "not running as root and password-less sudo is not available"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" apt-get -q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "install_browser.sh: installing ${packages[*]} with apt-get…" >&2
install() { "${APT[@]}" install --no-install-recommends "${packages[@]}" >"$log" 2>&1; }
# The package lists already on the machine are tried first; `apt-get update` only when they do not
# know the packages or name files the mirror no longer has. A source that cannot be reached makes
# update exit non-zero even when Debian's own lists came down, so its status is not trusted: the
# second install attempt says whether it was enough.
if ! install; then
  echo "install_browser.sh: refreshing the package lists (apt-get update)…" >&2
  "${APT[@]}" update >>"$log" 2>&1 || true
  if ! install; then
    tail -n 15 "$log" >&2
    fail "apt-get install failed (no network to the Debian mirror? see the lines above)"
  fi
fi

if ! version=$("$CHROMIUM" --version 2>&1); then
  fail "$CHROMIUM was installed but does not run: $(tail -n 3 <<<"$version")"
fi
echo "install_browser.sh: $(tail -n 1 <<<"$version")" >&2
