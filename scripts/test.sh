#!/usr/bin/env bash
# kvroute's test command: installs the real peers the tests need (if missing), builds once,
# and runs every test. Peers are required here: a missing one fails the run instead of
# skipping its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-tools.sh
export KVROUTE_REQUIRE_PEERS=1
export PATH="$PWD/.tools/venv/bin:$PATH"
# The deploy assets first: a quick, offline check that fails before the long build.
scripts/check-deploy.sh
swift build --build-tests
# One suite at a time: several end-to-end suites start servers and real peers, and timing
# claims (an engine leaving within a second) should not depend on what else runs.
swift test --skip-build --no-parallel "$@"
