#!/bin/bash
# A node of the coordinators' Galera store: MariaDB with wsrep, as the mysql user (rsync state
# transfer needs it). STORE_PEERS lists every node's host name. The node with STORE_FOUNDER=1
# founds the cluster on its very first start only (a restart rejoins, never founds a second
# cluster); the others join and receive a state transfer.
set -euo pipefail

datadir=/var/lib/mysql
found=()
if [ "${STORE_FOUNDER:-0}" = 1 ] && [ ! -d "$datadir/mysql" ]; then
  found=(--wsrep-new-cluster)
fi
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
fi
chown -R mysql:mysql "$datadir"
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
exec mariadbd --user=mysql --datadir="$datadir" --socket=/run/mysqld/mysqld.sock \
  --bind-address=0.0.0.0 --port=3306 --skip-name-resolve --performance-schema=OFF \
  --innodb-buffer-pool-size=32M --binlog-format=ROW --innodb-autoinc-lock-mode=2 \
  --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
  --wsrep-cluster-address="gcomm://${STORE_PEERS}" --wsrep-node-address="$(hostname)" \
  --wsrep-sst-method=rsync "${found[@]}" "$@"
