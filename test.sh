#!/usr/bin/env bash
# The test suite, slow end-to-end tests included. Extra arguments go to pytest
# (e.g. ./test.sh -m "not slow" for the quick tier).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
