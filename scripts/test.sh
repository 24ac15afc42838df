#!/usr/bin/env bash
# The whole test suite: installs npm dependencies, starts a real S3 server (Ceph RGW) for the
# S3 tier, runs every test under Deno and under Node 20 (through tsx), stops the server.
#
#   npx -y deno@2.9.6 task test            everything
#   SKIP_S3=1 npx -y deno@2.9.6 task test  without the S3 tier (never under CI=true)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if command -v deno >/dev/null 2>&1; then DENO=(deno); else DENO=(npx -y deno@2.9.6); fi

say() { printf '\n=== %s\n' "$*"; }

say "Installing npm dependencies (deno install)"
"${DENO[@]}" install >/dev/null

stop_rgw() { bash scripts/rgw.sh stop >/dev/null 2>&1 || true; }
if [[ "${SKIP_S3:-}" == "1" && "${CI:-}" != "true" ]]; then
  echo "SKIP_S3=1: the S3 tier is skipped." >&2
else
  say "Starting Ceph RADOS Gateway for the S3 tier"
  set +e
  # pipefail: the substitution's status is rgw.sh's (PIPESTATUS does not reach out of $()).
  env_file="$(bash scripts/rgw.sh start | tail -n 1)"
  status=$?
  set -e
  if [[ $status -eq 0 && -f "$env_file" ]]; then
    trap stop_rgw EXIT
    # shellcheck disable=SC1090
    source "$env_file"
    echo "S3 tier runs against $S3_ENDPOINT"
  elif [[ "${CI:-}" == "true" ]]; then
    echo "FATAL: the S3 server could not be started (rgw.sh exit $status) and CI=true forbids skipping." >&2
    exit 1
  else
    echo "WARNING: the S3 server could not be started (rgw.sh exit $status); the S3 tier is SKIPPED." >&2
  fi
fi

say "Chromium for the web viewer's browser tests"
set +e
# pipefail: the substitution's status is chromium.sh's (PIPESTATUS does not reach out of $()).
chromium_path="$(bash scripts/chromium.sh | tail -n 1)"
status=$?
set -e
if [[ $status -eq 0 && -x "$chromium_path" ]]; then
  export CHROMIUM_PATH="$chromium_path"
  echo "Browser tests run with $CHROMIUM_PATH"
elif [[ "${CI:-}" == "true" ]]; then
  echo "FATAL: Chromium could not be had (chromium.sh exit $status) and CI=true forbids skipping." >&2
  exit 1
else
  echo "WARNING: Chromium could not be had (chromium.sh exit $status); the browser tests are SKIPPED." >&2
fi

mapfile -t test_files < <(ls tests/*_test.ts)

say "Deno: deno test"
"${DENO[@]}" test --allow-all "${test_files[@]}"

say "Deno: the documentation's examples (deno test --doc)"
"${DENO[@]}" test --doc --allow-all mod.ts core/ storage/ executors/ git/ viewer/

say "Node $(node --version): node --test through tsx"
node --import tsx --test "${test_files[@]}"
