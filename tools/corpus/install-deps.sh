#!/bin/sh
# Debian packages the corpus builder and trainer need (run as root).
# Only Debian's apt is used: no pip, no other network access.
set -e
apt-get install -y --no-install-recommends \
    groff-base manpages manpages-dev manpages-de manpages-fr manpages-es \
    python3 python3-regex python3-numpy python3-torch libopenblas0-pthread
