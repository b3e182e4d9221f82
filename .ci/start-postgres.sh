#!/usr/bin/env bash
# Make sure a PostgreSQL server accepts connections on 127.0.0.1:5432 for the tests marked
# `postgres`. Idempotent: does nothing when one already does; starts the local Debian cluster
# when it is installed but down. Always exits 0: without a server the postgres tests skip
# (unless ANALYTICS_TEST_POSTGRES_DSN is set, which makes them fail instead).
set -uo pipefail

HOST=127.0.0.1
PORT=5432
WAIT_SECONDS=${POSTGRES_WAIT_SECONDS:-30}

ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$HOST" -p "$PORT"
  else
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
  fi
}

if ready; then
  echo "start-postgres: PostgreSQL is already accepting connections on $HOST:$PORT."
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ]; then
  echo "start-postgres: no PostgreSQL server installed here (no pg_ctlcluster); the postgres tests will skip."
  exit 0
fi

started=no
for version_dir in /etc/postgresql/*/; do
  version=$(basename "$version_dir")
  [ -d "$version_dir/main" ] || continue
  echo "start-postgres: starting cluster $version/main"
  if pg_ctlcluster --skip-systemctl-redirect "$version" main start; then
    started=yes
    break
  fi
done
if [ "$started" = no ]; then
  echo "start-postgres: could not start a PostgreSQL cluster; the postgres tests will skip."
  exit 0
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
  if ready; then
    echo "start-postgres: PostgreSQL is accepting connections on $HOST:$PORT."
    exit 0
  fi
  sleep 1
done
echo "start-postgres: PostgreSQL did not accept connections within ${WAIT_SECONDS}s; the postgres tests will skip."
exit 0
