#!/usr/bin/env bash
# The whole test suite: unit tests, end-to-end tests against a real sshd, and
# the kernel-engine VM lane. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "== type-check of the benches (bench/traffic, bench/scale)"
npx tsc -p bench/tsconfig.json --noEmit
echo "== unit and end-to-end tests"
npx vitest run
if [ "${SSHVAULT_SKIP_VM:-0}" = 1 ]; then
  echo "== kernel-engine VM lane skipped (SSHVAULT_SKIP_VM=1)"
else
  echo "== kernel-engine VM lane"
  bash test/vm/run-kernel-lane.sh
fi
