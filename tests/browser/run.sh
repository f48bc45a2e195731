#!/usr/bin/env bash
# Browser test of the server example: installs what is missing (Debian's chromium, playwright-core
# from npm), starts the server example (package twofactor-server-example) on a free port, runs
# login_flow.js against it and keeps the screenshots in ci-artifacts/. Exits non-zero when the
# test fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
artifacts="$root/ci-artifacts"
mkdir -p "$artifacts"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "installing playwright-core"
  (cd tests/browser && npm install --no-audit --no-fund --loglevel=error)
fi

# The server example is a package of the workspace (examples/server); CARGO_TARGET_DIR is honoured.
cargo build --quiet -p twofactor-server-example --bin server
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target="$root/$target" ;; esac
log="$artifacts/server-example.log"
: >"$log"
# PORT=0: the operating system picks a free port; the banner says which. Unset PUBLIC_ORIGIN:
# the page is opened at http://localhost:PORT, the security keys' default origin.
env -u PUBLIC_ORIGIN PORT=0 RUST_LOG=info "$target/debug/server" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

base=""
for _ in $(seq 1 100); do
  base=$(grep -o 'listening on http://[A-Za-z0-9.:-]*' "$log" | head -n1 | sed 's/^listening on //') || true
  [ -n "$base" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$log"
    echo "the server example exited before listening" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$base" ]; then
  cat "$log"
  echo "the server example did not start listening" >&2
  exit 1
fi
echo "server example at $base"

BASE_URL="$base" SERVER_LOG="$log" ARTIFACTS_DIR="$artifacts" node tests/browser/login_flow.js
