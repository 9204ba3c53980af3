#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (store on SQLite and PostgreSQL, actions, API,
# Rasa data validation and test stories, and one end-to-end chat against the real stack).
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false
export CRM_TEST_POSTGRES_URL=${CRM_TEST_POSTGRES_URL-postgresql+psycopg://postgres@127.0.0.1:5432/test}

# The machine starts PostgreSQL before a session; start it again if it has stopped since.
if [ -n "$CRM_TEST_POSTGRES_URL" ] && command -v pg_isready >/dev/null \
    && ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi

.venv-app/bin/ruff check .
.venv-app/bin/ruff format --check .
.venv-app/bin/mypy
.venv-app/bin/pytest "$@"
