#!/usr/bin/env bash
# The full sweep of the launcher test: every byte of the launcher's code flipped in
# turn and run under bash, dash and busybox sh (some 4,000 shells, several minutes on
# two cores). The suite runs a sample of it; run this after changing the launcher.
#
#   bash hack/flip-sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
AIRBIN_FLIP_SWEEP=full cargo test --locked -p airbin --test bundle -- --exact a_flipped_byte_in_the_launchers_code_never_runs_damaged_code --nocapture
