#!/bin/bash
# A node of the coordinators' Galera store: MariaDB with wsrep, as the mysql user (rsync state
# transfer needs it). Used by the docker rig and by the Kubernetes StatefulSet alike.
#
#   STORE_PEERS          every node's host name, comma-separated
#   STORE_FOUNDER        the host name of the node that founds the cluster, on its very first
#                        start only (a restart rejoins and never founds a second cluster)
#   STORE_ACCOUNT        the coordinators' account and database (default qserv_ctl), made or
#                        given its current password on every start, once the node is synced
#   STORE_PASSWORD_FILE  that account's password (the coordinators' --store-password-file)
#
# A node that was the last to leave the cluster cleanly (Galera wrote safe_to_bootstrap: 1) and
# finds no peer answering founds it again, so a cluster stopped node by node comes back by
# itself. After a crash of every node none is safe to bootstrap: see "The coordinator's store"
# in docs/operations.md.
set -euo pipefail

datadir=/var/lib/mysql
me=$(hostname)
account=${STORE_ACCOUNT:-qserv_ctl}

log() { echo "store-entrypoint: $*" >&2; }

# Whether another node's group-communication port answers.
peer_answers() {
  local peer
  IFS=, read -ra peers <<<"${STORE_PEERS:-}"
  for peer in "${peers[@]}"; do
    [ "$peer" = "$me" ] && continue
    if timeout 2 bash -c "exec 3<>/dev/tcp/$peer/4567" 2>/dev/null; then return 0; fi
  done
  return 1
}

safe_to_bootstrap() { grep -qx 'safe_to_bootstrap: 1' "$datadir/grastate.dat" 2>/dev/null; }

found=()
if [ ! -d "$datadir/mysql" ]; then
  if [ "${STORE_FOUNDER:-}" = "$me" ]; then
    log "first start of the founder: founding the cluster"
    found=(--wsrep-new-cluster)
  fi
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=socket \
    --skip-test-db >/dev/null
elif safe_to_bootstrap && ! peer_answers; then
  log "last node to leave the cluster and no peer answers: founding it again"
  found=(--wsrep-new-cluster)
fi
chown -R mysql:mysql "$datadir"
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
rm -f /run/mysqld/account-ready

# The password as the coordinator reads it: trailing line ends dropped, quoted for SQL.
sql_password() {
  local pw
  pw=$(cat "$STORE_PASSWORD_FILE")
  while [[ $pw == *$'\r' || $pw == *$'\n' ]]; do pw=${pw%?}; done
  pw=${pw//\\/\\\\}
  printf '%s' "${pw//\'/\'\'}"
}

# Once this node is synced: the account, its database and its password. Statements go through
# standard input, so the password is never on a command line.
make_account() {
  local state=""
  until [ "$state" = Synced ]; do
    sleep 1
    kill -0 "$server" 2>/dev/null || return 0
    state=$(mariadb -N -B -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
      WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT'" 2>/dev/null || true)
  done
  local pw
  pw=$(sql_password)
  if mariadb <<SQL; then
CREATE DATABASE IF NOT EXISTS \`$account\`;
CREATE USER IF NOT EXISTS '$account'@'%' IDENTIFIED BY '$pw';
ALTER USER '$account'@'%' IDENTIFIED BY '$pw';
GRANT ALL ON \`$account\`.* TO '$account'@'%';
SQL
    touch /run/mysqld/account-ready
    log "account $account ready"
  else
    log "cannot make account $account; the coordinators cannot use this node until it exists"
  fi
}

mariadbd --user=mysql --datadir="$datadir" --socket=/run/mysqld/mysqld.sock \
  --bind-address=0.0.0.0 --port=3306 --skip-name-resolve --performance-schema=OFF \
  --innodb-buffer-pool-size=32M --binlog-format=ROW --innodb-autoinc-lock-mode=2 \
  --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
  --wsrep-cluster-address="gcomm://${STORE_PEERS}" --wsrep-node-address="$me" \
  --wsrep-sst-method=rsync "${found[@]}" "$@" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null' TERM INT
if [ -n "${STORE_PASSWORD_FILE:-}" ]; then make_account & fi

# A signal wakes the first wait; the second one waits for the server to finish shutting down.
status=0
wait "$server" || status=$?
if kill -0 "$server" 2>/dev/null; then
  status=0
  wait "$server" || status=$?
fi
exit "$status"
