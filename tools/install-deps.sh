#!/usr/bin/env bash
# Install the Debian 12 packages moescope builds, tests and runs with.
# Idempotent: does nothing when everything is present.  Needs root (or sudo).
set -euo pipefail
pkgs=(
  build-essential meson ninja-build pkg-config
  libopenblas-dev libpcre2-dev libunistring-dev libsqlite3-dev libpq-dev libjansson-dev zlib1g-dev
  libgtk-4-dev libadwaita-1-dev libcairo2-dev libpango1.0-dev
  sqlite3 postgresql python3 xvfb xauth
  # the workbench's end-to-end test (tests/gui): a virtual X server, a session
  # bus with the accessibility bus, pyatspi to drive the window, xdotool for
  # pointer and keys, ImageMagick for screenshots, gdbus for actions, xprop for
  # a window's properties
  dbus dbus-x11 at-spi2-core python3-pyatspi libglib2.0-bin xdotool imagemagick x11-utils
  # and on Wayland (tests/gui/wayland.sh): a headless sway, grim for its screen
  sway grim
  # figures (ui/): fonts for labels and for token text in every script, and
  # poppler's pdftoppm, with which the tests read PDF output back
  fonts-dejavu-core fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji
  poppler-utils
  # the fuzz targets (tests/fuzz): clang with libFuzzer and the sanitizer runtimes
  clang libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
