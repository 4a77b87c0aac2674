#!/usr/bin/env bash
# tmux: the `mailroom sql` shell is tested in a real terminal (send-keys / capture-pane).
set -euo pipefail
command -v tmux >/dev/null && exit 0
echo "installing tmux (Debian package) for the shell's terminal test"
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tmux
