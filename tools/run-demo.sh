#!/usr/bin/env bash
# The main job: install what is missing, build, then trace the bundled
# prompts with the default model and print a report (moescope demo).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh build
exec build/app/moescope demo "$@"
