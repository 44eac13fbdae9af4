#!/usr/bin/env bash
# wayland.sh EXE OUTDIR — the workbench on Wayland: its file dialog (a process
# of its own, ui/gtk/chooser.c) must belong to the window, as a dialog does.
# A headless sway (wlroots, which has xdg-foreign) holds the window; a tiling
# compositor floats a window that has a parent and tiles one that has none,
# so "the dialog floats over the window" is what a user sees when the parent
# reached the compositor, and "the screen split in two" when it did not.
# Actions go over D-Bus (org.gtk.Actions), the compositor is read and the
# dialog closed through swaymsg, and the last screen is saved in OUTDIR.
# Skips (TAP "1..0 # SKIP reason", exit 0) only when a tool is missing.
set -u
exe=$1 out=$2
skip() { echo "1..0 # SKIP $*"; exit 0; }
for t in sway swaymsg; do command -v $t >/dev/null || skip "$t is missing (Debian package sway)"; done
command -v dbus-run-session >/dev/null || skip "dbus-run-session is missing (Debian package dbus)"
command -v gdbus >/dev/null || skip "gdbus is missing (Debian package libglib2.0-bin)"
command -v setpriv >/dev/null || skip "setpriv is missing (Debian package util-linux)"
if [ ! -x "$exe" ]; then
    echo "1..1"
    echo "not ok 1 - $exe is not built"
    exit 1
fi

if [ -z "${MS_WAYLAND_INNER:-}" ]; then
    # sway refuses to run as root: then it runs as nobody, in a runtime
    # directory of nobody's (root's clients may still connect to it)
    rt=$(mktemp -d "${TMPDIR:-/tmp}/moescope-wl.XXXXXX")
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/moescope-wlapp.XXXXXX")
    trap 'rm -rf "$rt" "$tmp"' EXIT
    chmod 700 "$rt"
    as=()
    if [ "$(id -u)" -eq 0 ]; then
        chown nobody "$rt"
        as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    fi
    printf 'xwayland disable\noutput HEADLESS-1 resolution 1400x900\n' > "$rt/sway.cfg"
    [ "$(id -u)" -eq 0 ] && chown nobody "$rt/sway.cfg"
    rm -rf "$out"
    mkdir -p "$out"
    export MS_WAYLAND_INNER=1 MS_WL_RT=$rt MS_WL_TMP=$tmp
    # the compositor starts inside the session bus's run, so it ends with it
    # (as root dbus-daemon prints harmless "Failed to set fd limit" lines, and
    # the accessibility registry announces itself on stdout, which is not TAP)
    dbus-run-session -- bash "$0" "$exe" "$out" "${as[@]}" 2> >(grep -v -e 'fd limit' -e '^dbus-daemon' >&2) |
        grep --line-buffered -v 'SpiRegistry daemon'
    exit "${PIPESTATUS[0]}"
fi

# ---- inside the session bus
shift 2
as=("$@")
rt=$MS_WL_RT tmp=$MS_WL_TMP
APP_ID=io.github.moescope.Workbench APP_PATH=/io/github/moescope/Workbench
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); failed=1; echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else nok "$what"; fi; }

env -i PATH="$PATH" HOME="$rt" XDG_RUNTIME_DIR="$rt" WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 \
    WLR_RENDERER=pixman "${as[@]}" sway -c "$rt/sway.cfg" >"$tmp/sway.log" 2>&1 &
sway_pid=$!
app_pid=
cleanup() {
    [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null
    kill "$sway_pid" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT
for _ in $(seq 100); do
    sock=$(ls "$rt"/wayland-[0-9] 2>/dev/null | head -1)
    ipc=$(ls "$rt"/sway-ipc.*.sock 2>/dev/null | head -1)
    [ -n "$sock" ] && [ -n "$ipc" ] && break
    sleep 0.1
done
echo "1..9"
if [ -z "$sock" ] || [ -z "$ipc" ]; then
    nok "sway started headless ($(tail -1 "$tmp/sway.log"))"
    exit 1
fi
ok "sway started headless ($(basename "$sock"))"

mkdir -p "$tmp/home" "$tmp/config/gtk-4.0" "$tmp/data" "$tmp/cache"
printf '[Settings]\ngtk-font-name=DejaVu Sans 10\ngtk-enable-animations=false\n' > "$tmp/config/gtk-4.0/settings.ini"
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache" \
    XDG_RUNTIME_DIR="$rt" WAYLAND_DISPLAY=$(basename "$sock") GDK_BACKEND=wayland GSK_RENDERER=cairo \
    LC_ALL=C.UTF-8 GTK_THEME=Adwaita G_SLICE=always-malloc
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
unset DISPLAY

# the tree as lines "tiled|floating PID X Y W H TITLE"
windows() {
    swaymsg -s "$ipc" -t get_tree -r | python3 -c '
import json, sys
def walk(n, fl):
    if n.get("pid") and n.get("name") is not None:
        r = n["rect"]
        print("floating" if fl else "tiled", n["pid"], r["x"], r["y"], r["width"], r["height"], n["name"])
    for c in n.get("nodes", []): walk(c, fl)
    for c in n.get("floating_nodes", []): walk(c, True)
walk(json.load(sys.stdin), False)'
}
# waits (up to 60 s: the ASan build under load is slow) for a window whose line matches the pattern
wait_window() {
    for _ in $(seq 600); do
        windows | grep -q -- "$1" && return 0
        sleep 0.1
    done
    return 1
}
activate() {
    gdbus call --session --dest $APP_ID --object-path "$APP_PATH$1" --method org.gtk.Actions.Activate \
        "$2" '[]' '{}' >/dev/null
}

"$exe" >"$tmp/app.log" 2>&1 &
app_pid=$!
check "the workbench's window is on the Wayland screen" wait_window "^tiled $app_pid .* moescope$"
main=$(windows | grep "^tiled $app_pid ")

dialog_test() {   # $1: which opening
    activate /window/1 open
    local line=
    for _ in $(seq 600); do
        line=$(windows | grep " Open a model" | head -1)
        [ -n "$line" ] && break
        sleep 0.1
    done
    if [ -z "$line" ]; then
        nok "$1 Open: the file dialog appears (the window's log: $(tail -1 "$tmp/app.log"))"
        return
    fi
    ok "$1 Open: the file dialog appears"
    read -r kind pid x y w h _ <<<"$line"
    read -r _ _ mx my mw mh _ <<<"$main"
    if [ "$kind" = floating ] && [ "$x" -ge "$mx" ] && [ "$y" -ge "$my" ] &&
       [ $((x + w)) -le $((mx + mw)) ] && [ $((y + h)) -le $((my + mh)) ]; then
        ok "$1 Open: the dialog floats over the window, as its dialog ($w x $h at $x,$y in $mw x $mh)"
    else
        nok "$1 Open: the dialog floats over the window (it is $kind, $w x $h at $x,$y; the window $mw x $mh at $mx,$my)"
    fi
    [ "$1" = first ] && command -v grim >/dev/null && grim -o HEADLESS-1 "$out/wayland-dialog.png" 2>/dev/null
    swaymsg -s "$ipc" "[pid=$pid] kill" >/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then nok "$1 Open: closing the dialog cancels it (its process $pid still runs)"
    else ok "$1 Open: closing the dialog cancels it"; fi
}
# twice: the window's handle is withdrawn after the first dialog and exported again
dialog_test first
dialog_test second
activate "" quit
for _ in $(seq 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$app_pid" 2>/dev/null; then
    nok "Quit ends the workbench"
else
    wait "$app_pid"
    rc=$?
    app_pid=
    check "Quit ends the workbench (exit status $rc)" test "$rc" -eq 0
fi
if [ $failed -ne 0 ]; then
    echo "# the window's messages:"
    sed 's/^/#   /' "$tmp/app.log" | tail -20
fi
exit $failed
