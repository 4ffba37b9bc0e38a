#!/usr/bin/env bash
# Installs what is missing on a fresh Debian machine, builds the platform and
# starts it on this machine (`cf dev start`). Extra arguments go to `cf dev start`
# (e.g. --router-port 8081, --dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
cargo build --release --bins
mkdir -p "$HOME/.local/bin"
ln -sf "$PWD/target/release/cf" "$HOME/.local/bin/cf"
echo "==> cf linked at ~/.local/bin/cf"
exec target/release/cf dev start "$@"
