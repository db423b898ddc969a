#!/bin/bash
# A rig node: MariaDB (data directory created on first start, kept in /var/lib/mysql across
# container restarts), then the agent in the foreground. Arguments go to qserv-agent.
set -euo pipefail

datadir=/var/lib/mysql
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=root --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
fi
mkdir -p /run/mysqld
mariadbd --user=root --datadir="$datadir" --socket=/run/mysqld/mysqld.sock \
  --bind-address=127.0.0.1 --port=3306 --skip-name-resolve --performance-schema=OFF \
  --innodb-buffer-pool-size=32M &
db=$!

# The agent waits for its database itself (and reports it not ready meanwhile); the container
# lives as long as both do.
qserv-agent "$@" &
agent=$!
trap 'kill -TERM "$agent" "$db" 2>/dev/null; wait' TERM INT
wait -n "$agent" "$db"
status=$?
kill -TERM "$agent" "$db" 2>/dev/null || true
wait || true
exit "$status"
