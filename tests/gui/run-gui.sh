#!/usr/bin/env bash
# run-gui.sh EXE SOURCE OUTDIR — the workbench's end-to-end test (drive.py)
# under a virtual X server (Xvfb, 1400×900) with its own session bus, so the
# accessibility bus and registry start on demand.  User directories are
# fresh temporary ones (settings, recent files, traces never touch the real
# ones) and the interface font is fixed, so screenshots are stable.
# Screenshots and exported files go to OUTDIR (replaced on each run).
# When the PostgreSQL server binaries are there, a throwaway server on
# loopback holds a trace that the last step opens by URI (tests/lib-pg.sh).
# Skips (TAP "1..0 # SKIP reason", exit 0) only when a tool is missing.
set -u
exe=$1 src=$2 out=$3
skip() { echo "1..0 # SKIP $*"; exit 0; }
command -v Xvfb >/dev/null || skip "Xvfb is missing (Debian package xvfb)"
command -v dbus-run-session >/dev/null || skip "dbus-run-session is missing (Debian package dbus)"
[ -x /usr/libexec/at-spi-bus-launcher ] || skip "the accessibility bus is missing (Debian package at-spi2-core)"
/usr/bin/python3 -c 'import pyatspi' 2>/dev/null || skip "pyatspi is missing (Debian package python3-pyatspi)"
command -v xdotool >/dev/null || skip "xdotool is missing (Debian package xdotool)"
command -v import >/dev/null && command -v convert >/dev/null || skip "ImageMagick is missing (Debian package imagemagick)"
command -v gdbus >/dev/null || skip "gdbus is missing (Debian package libglib2.0-bin)"
if [ ! -x "$exe" ]; then
  echo "1..1"
  echo "not ok 1 - $exe is not built"
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/moescope-gui.XXXXXX")
trap 'pg_stop 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/config/gtk-4.0" "$tmp/data" "$tmp/cache" "$tmp/runtime" "$tmp/home"
chmod 700 "$tmp/runtime"
printf '[Settings]\ngtk-font-name=DejaVu Sans 10\ngtk-enable-animations=false\n' > "$tmp/config/gtk-4.0/settings.ini"
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache" \
  XDG_RUNTIME_DIR="$tmp/runtime" GSK_RENDERER=cairo GDK_BACKEND=x11 LC_ALL=C.UTF-8 GTK_THEME=Adwaita
unset DISPLAY WAYLAND_DISPLAY DBUS_SESSION_BUS_ADDRESS
# in the ASan build: GTK, fontconfig and GLib keep caches to exit on purpose,
# so leak checking the whole toolkit is noise (memory errors still abort)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# GLib's own slice allocator (lists, GValues, ...) reuses freed blocks without
# telling ASan: with plain malloc a use after free of a GList node (as act_quit
# once walked the window list while closing its windows) is caught every time,
# not only when a reused node happens to crash
export G_SLICE=always-malloc
rm -rf "$out"
mkdir -p "$out"
# as root dbus-daemon prints harmless "Failed to set fd limit" lines
# and the accessibility registry announces itself on stdout (not TAP): both filtered
# Xvfb picks a free display itself (-displayfd): `xvfb-run -a` races when two
# runs start together (both take :99, one then talks to the other's server)
# a PostgreSQL trace for the workbench's URI step (skipped by drive.py, with
# the reason, when the server binaries or libpq support are missing)
. "$src/tests/lib-pg.sh"
pg_note=$pg_skip_reason
cli=$(dirname "$exe")/../../app/moescope
if [ -z "$pg_note" ] && "$cli" sql --db "postgresql://nobody@127.0.0.1:1/x" "SELECT 1" 2>&1 | grep -q "built without PostgreSQL"; then
    pg_note="moescope built without libpq"
fi
if [ -z "$pg_note" ]; then
    if pg_start && pg_psql postgres -c "CREATE DATABASE wb" &&
       "$cli" trace "$src/data/models/default.gguf" --prompts "$src/data/prompts/default.jsonl" \
           --db "$PGURI/wb" >"$tmp/pgtrace.log" 2>&1; then
        # a password in the URI (the server trusts the role: it is not checked)
        # that the window must never show
        export MS_GUI_PGURI="postgresql://ms:s3cret-pw@127.0.0.1:$PGPORT_MS/wb"
    else
        pg_note="the PostgreSQL trace could not be made: $(tail -1 "$tmp/pgtrace.log" 2>/dev/null)"
    fi
fi
export MS_GUI_PG_SKIP="$pg_note"
# -noreset: by default Xvfb resets itself whenever its last client leaves,
# and a client connecting during the reset is refused ("cannot open a
# display", seen under load when a short client such as the check below or
# the accessibility bus launcher came and went first).  The server must
# also take a client before the test starts, else it is replaced (up to
# three times).
xvfb=
trap 'kill $xvfb 2>/dev/null; wait $xvfb 2>/dev/null; pg_stop; rm -rf "$tmp"' EXIT
for attempt in 1 2 3; do
    : > "$tmp/display"
    exec 3> "$tmp/display"
    Xvfb -displayfd 3 -screen 0 1400x900x24 -nolisten tcp -noreset >"$tmp/xvfb.log" 2>&1 &
    xvfb=$!
    exec 3>&-
    for _ in $(seq 100); do [ -s "$tmp/display" ] && break; sleep 0.1; done
    if [ -s "$tmp/display" ]; then
        export DISPLAY=":$(head -1 "$tmp/display")"
        for _ in $(seq 20); do xdotool getdisplaygeometry >/dev/null 2>&1 && break 2; sleep 0.1; done
    fi
    kill $xvfb 2>/dev/null; wait $xvfb 2>/dev/null
    xvfb=
    echo "# Xvfb attempt $attempt: no display to connect to ($(tail -1 "$tmp/xvfb.log"))"
done
[ -n "$xvfb" ] || { echo "1..1"; echo "not ok 1 - Xvfb did not start: $(tail -1 "$tmp/xvfb.log")"; exit 1; }
dbus-run-session -- \
  /usr/bin/python3 "$src/tests/gui/drive.py" --exe "$exe" --source "$src" --out "$out" \
  2> >(grep -v -e 'fd limit' -e '^dbus-daemon' -e 'SpiRegistry daemon' >&2) | grep --line-buffered -v 'SpiRegistry daemon'
exit "${PIPESTATUS[0]}"
