#!/usr/bin/env bash
# The main job on embedded defaults: simulate a cohort, train, register and promote the
# champion, score a sample cohort and start the HTTP service (local SQLite MLflow store
# under mlruns/, no external service). Extra arguments go to `eih quickstart`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/eih quickstart "$@"
