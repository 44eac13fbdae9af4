#!/usr/bin/env bash
# The main job: install what is missing, build, then trace the bundled
# prompts with the default model and print a report (moescope demo), and open
# the workbench (moescope-gtk) on that trace when a display is there.
# --no-gui: the text report only.  Other arguments go to `moescope demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
args=() gui=(--gui)
for a in "$@"; do
  if [ "$a" = --no-gui ]; then gui=(); else args+=("$a"); fi
done
tools/install-deps.sh
tools/build.sh build
exec build/app/moescope demo "${gui[@]}" "${args[@]}"
