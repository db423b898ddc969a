#!/usr/bin/env bash
# The docker rig scenario: a five-node instance in containers with mutual TLS and two
# coordinators on a three-node Galera store, driven with the CLI from the host, through
# failures an operator meets. Every step asserts; the script exits
# non-zero at the first failure and tears the rig down in any case.
#
#   integration/rig/rig-scenario.sh [BIN_DIR]     (default BIN_DIR: target/debug)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=${1:-$top/target/debug}
export RIG_PORT=${RIG_PORT:-17070}
export RIG_PORT_B=${RIG_PORT_B:-17071}
work=$(mktemp -d /tmp/qserv-rig.XXXXXX)
project=qservrig$$
compose() { docker-compose -p "$project" -f "$work/docker-compose.yml" "$@"; }
step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'rig scenario FAILED: %s\n' "$*" >&2; compose logs --tail 30 >&2 || true; exit 1; }
cleanup() { compose down -v --remove-orphans >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# Every command is bounded: a job that never starts fails the scenario with the logs, rather
# than holding CI until its own limit.
qs() {
  timeout 300 "$bin/qserv" --coordinator "https://127.0.0.1:$RIG_PORT,https://127.0.0.1:$RIG_PORT_B" \
    --tls-cert "$work/pki/operator.pem" \
    --tls-key "$work/pki/operator.key" --tls-ca "$work/pki/ca.pem" "$@"
}
# node FIELD NAME: a field of a node in 'qserv -o json status'.
node() {
  qs -o json status | python3 -c 'import json,sys; d=json.load(sys.stdin); n=[x for x in d["nodes"] if x["name"]==sys.argv[2]][0]; print(json.dumps(n[sys.argv[1]]))' "$1" "$2"
}
field() { qs -o json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# The leading coordinator's id, as the coordinator that answers sees it.
leader() { qs -o json status | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin)["coordinators"] if c["leader"]][0])'; }
# Causal reads: a node applies what another committed a moment later, so without waiting for
# it a read there may miss a change the coordinators just made.
store_sql() { compose exec -T "${STORE_NODE:-store-1}" mariadb -N -B -e "SET SESSION wsrep_sync_wait = 1; $1"; }
# store_status VARIABLE: a wsrep status variable of the store node in use.
store_status() { store_sql "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '$1'"; }
# qs_at PORT: the leader as the coordinator on PORT alone sees it.
qs_at() {
  "$bin/qserv" --coordinator "https://127.0.0.1:$1" --tls-cert "$work/pki/operator.pem" \
    --tls-key "$work/pki/operator.key" --tls-ca "$work/pki/ca.pem" -o json status |
    python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin)["coordinators"] if c["leader"]][0])'
}
# wait_until SECONDS DESCRIPTION COMMAND…: polls every 100 ms; prints how long it took.
wait_until() {
  local limit=$1 what=$2; shift 2
  local start=$(date +%s%N)
  while ! "$@" >/dev/null 2>&1; do
    (( ($(date +%s%N) - start) / 1000000000 < limit )) || fail "timed out after ${limit}s: $what"
    sleep 0.1
  done
  printf '    %s after %d ms\n' "$what" $(( ($(date +%s%N) - start) / 1000000 ))
}
is() { [ "$("$@" 2>/dev/null | tail -n 1)" = "$EXPECT" ]; }
target_of() { node schema "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["target"])'; }
expect() { EXPECT=$1; shift; is "$@"; }

step "images (base from debootstrap, cached after the first run)"
"$top/deploy/docker/build-images.sh" "$bin"

step "certificates, secrets, spec"
cp "$here/docker-compose.yml" "$work/"
nodes="czar-0:czar repl-0:repl worker-1:worker worker-2:worker worker-3:worker"
agents=()
for n in $nodes; do agents+=(--agent "${n%%:*}=${n%%:*}"); done
"$bin/qserv" certs init --dir "$work/pki" --coordinator coordinator-a,coordinator-b,localhost,127.0.0.1 "${agents[@]}" >/dev/null
printf 'rig-store-%s\n' "$RANDOM$RANDOM" > "$work/store-password"
chmod 0644 "$work/store-password"
mkdir -p "$work/secrets" "$work/migrations"
cp -r "$top/migrations/qserv/." "$work/migrations/"
{ echo 'layout = "qserv"'; echo 'name = "rig"'; for n in $nodes; do printf '\n[[nodes]]\nname = "%s"\nrole = "%s"\nagent = "https://%s:7080"\n' "${n%%:*}" "${n##*:}" "${n%%:*}"; done; } > "$work/spec.toml"
# Each node's stand-ins: Qserv's layout for its role. The replication controller takes 4 s to
# become ready, which gives the scenario a service to kill in the middle of up.
mkdir -p "$work/agents" "$work/events"
chmod 0777 "$work/events"
layout_czar="xrootd-manager:1094 cmsd-manager:2131 proxy:4040 czar-http:4048"
layout_repl="replication-registry:25082 replication-controller:25081"
layout_worker="worker-xrootd:1094 worker-cmsd:2131 worker-repl:25000"
for n in $nodes; do
  name=${n%%:*} role=${n##*:} list="layout_${n##*:}"
  {
    echo 'service-controller = "exec"'
    for s in ${!list}; do
      delay=0; [ "${s%%:*}" = replication-controller ] && delay=4000
      printf '\n[[services]]\nname = "%s"\nexec = "exec qserv-standin --service %s --node %s --port %s --events /rig/events/%s.events --ready-after %s"\nready = "tcp://127.0.0.1:%s"\nstop-timeout = "2s"\n' \
        "${s%%:*}" "${s%%:*}" "$name" "${s##*:}" "$name" "$delay" "${s##*:}"
    done
  } > "$work/agents/$name.toml"
done
for n in $nodes; do
  printf 'mysqld_user_qserv_password = "rig-%s"\nrepl_user = "qsreplica"\nrepl_password = "rig-repl-%s"\n' "$RANDOM$RANDOM" "$RANDOM" > "$work/secrets/${n%%:*}.toml"
  chmod 0600 "$work/secrets/${n%%:*}.toml"
done

step "start the coordinators' Galera store, then the rig"
compose up -d store-1 >/dev/null
wait_until 120 "store-1 founded the cluster" expect Synced store_status WSREP_LOCAL_STATE_COMMENT
compose up -d store-2 store-3 >/dev/null
wait_until 180 "three store nodes" expect 3 store_status WSREP_CLUSTER_SIZE
# Each store node makes the coordinators' account itself once synced (store-entrypoint.sh).
for s in store-1 store-2 store-3; do
  wait_until 60 "$s made the account" compose exec -T "$s" test -f /run/mysqld/account-ready
done
compose up -d >/dev/null
wait_until 60 "every node ready" expect ok field health
wait_until 30 "one coordinator leads" leader

# The stand-ins' events, in the order they happened across the containers.
events() { cat "$work"/events/*.events 2>/dev/null | sort -k4,4n; }
started() { events | grep -q "^start $1 "; }
# Every service started only once every instance of what it comes after (Qserv's layout,
# DESIGN §15) was ready, on any node.
check_order() {
  events | python3 -c '
import sys
after = {"xrootd-manager": ["replication-registry"], "cmsd-manager": ["replication-registry"],
         "worker-xrootd": ["xrootd-manager", "cmsd-manager"], "worker-cmsd": ["xrootd-manager", "cmsd-manager"],
         "worker-repl": ["xrootd-manager", "cmsd-manager"],
         "replication-controller": ["worker-xrootd", "worker-cmsd", "worker-repl"],
         "proxy": ["replication-controller"], "czar-http": ["proxy"]}
ev = [l.split() for l in sys.stdin if l.strip()]
first_start = {}; last_ready = {}
for kind, svc, node, at in ev:
    at = int(at)
    if kind == "start": first_start.setdefault(svc, at)
    if kind == "ready": last_ready[svc] = max(last_ready.get(svc, 0), at)
for svc, deps in after.items():
    assert svc in first_start, svc + " never started"
    for d in deps:
        assert last_ready[d] < first_start[svc], svc + " started before every " + d + " was ready"
print("order kept across", len(set(e[2] for e in ev)), "containers")'
}

step "install; a service killed in the middle of up: what was started stops again, in maintenance"
qs install >/dev/null || fail "install"
[ "$(field mode)" = maintenance ] || fail "install did not end in maintenance"
repl=$(compose ps -q repl-0)
job=$(qs up --detach --timeout 120s) || fail "up"
wait_until 60 "the replication controller started" started replication-controller
docker exec "$repl" pkill -KILL -f 'service replication-controller' || fail "cannot kill the replication controller"
if qs jobs wait "$job" >/dev/null 2>&1; then fail "up succeeded with its replication controller killed"; fi
[ "$(field mode)" = maintenance ] || fail "a failed up did not end in maintenance"
qs jobs show "$job" | grep -q 'replication-controller' || fail "the failed up does not name the service"
events | python3 -c '
import sys, collections
runs = collections.Counter(); stops = collections.Counter()
for kind, svc, node, _ in (l.split() for l in sys.stdin if l.strip()):
    if svc == "replication-controller": continue
    if kind == "ready": runs[(node, svc)] += 1
    if kind == "stop": stops[(node, svc)] += 1
assert runs and runs == stops, (runs, stops)
print("every service started was stopped again:", sum(stops.values()))' || fail "services left running after the failed up"

step "up: every service in order across the containers"
rm -f "$work"/events/*.events
qs up --timeout 120s >/dev/null || fail "up"
[ "$(field mode)" = normal ] || fail "up did not end in normal"
for n in $nodes; do wait_until 30 "${n%%:*} services running" expect '"running"' node services "${n%%:*}"; done
check_order || fail "up did not keep the services' order"

step "a stopped worker container shows within seconds, and comes back"
compose stop -t 1 worker-2 >/dev/null
wait_until 10 "worker-2 not ready" expect false node agent_reachable worker-2
expect degraded field health || fail "health is not degraded"
compose start worker-2 >/dev/null
wait_until 60 "worker-2 ready again" expect true node db_ready worker-2
wait_until 30 "health ok again" expect ok field health
[ "$(field mode)" = normal ] || fail "the mode changed"

step "a worker cut off the network during up: up waits, then completes"
qs down >/dev/null || fail "down"
net="${project}_qserv"
docker network disconnect "$net" "$(compose ps -q worker-3)"
wait_until 10 "worker-3 unreachable" expect false node agent_reachable worker-3
job=$(qs up --detach --timeout 300s)
sleep 3
[ "$(field mode)" = maintenance ] || fail "up did not wait for worker-3"
docker network connect --alias worker-3 "$net" "$(compose ps -q worker-3)"
qs jobs wait "$job" >/dev/null || fail "up did not complete after reconnecting worker-3"
[ "$(field mode)" = normal ] || fail "not normal after up"

step "a rolling restart of every agent container in normal changes neither mode nor epoch"
epoch=$(field epoch)
for n in $nodes; do
  compose restart -t 5 "${n%%:*}" >/dev/null
  wait_until 60 "${n%%:*} back" expect true node db_ready "${n%%:*}"
done
[ "$(field mode)" = normal ] || fail "mode changed during the rolling restart"
[ "$(field epoch)" = "$epoch" ] || fail "epoch changed during the rolling restart"
for n in $nodes; do wait_until 30 "${n%%:*} services running again" expect '"running"' node services "${n%%:*}"; done

step "qserv restart: the services restarted node by node through the agents, still in normal"
restarted=$(qs -o json restart --settle 1s) || fail "qserv restart"
printf '%s' "$restarted" | python3 -c 'import json,sys; j=json.loads(sys.stdin.read().splitlines()[-1]); n=j["nodes"]; assert len(n)==5 and all(x["state"]=="done" and "restarted" in (x["detail"] or "") for x in n), n' ||
  fail "not every node was restarted: $restarted"
[ "$(field mode)" = normal ] || fail "mode changed during qserv restart"
[ "$(field epoch)" = "$epoch" ] || fail "epoch changed during qserv restart"
for n in $nodes; do expect '"running"' node services "${n%%:*}" || fail "${n%%:*} services not running after qserv restart"; done

step "down, then a parallel upgrade across the workers"
qs down >/dev/null || fail "down"
for n in $nodes; do expect '"stopped"' node services "${n%%:*}" || fail "${n%%:*} services not stopped by down"; done
printf 'CREATE TABLE qservw_worker.Rig (n INT);\nINSERT INTO qservw_worker.Rig VALUES (1);\nDO SLEEP(4);\n' > "$work/migrations/worker/migrate-1-to-2.sql"
compose restart -t 5 coordinator-a coordinator-b >/dev/null
wait_until 60 "coordinators back with the new target" expect 2 target_of worker-1
wait_until 30 "one coordinator leads" leader
job=$(qs upgrade apply --detach)
sleep 1.5

step "the leading coordinator killed mid-upgrade: the other finishes the job"
first=$(leader)
compose kill "$first" >/dev/null
qs jobs wait "$job" >/dev/null || fail "the upgrade did not complete after the leader was lost"
[ "$(leader)" != "$first" ] || fail "$first still leads after being killed"
for w in worker-1 worker-2 worker-3; do
  rows=$(compose exec -T "$w" mariadb -N -B -e 'SELECT COUNT(*) FROM qservw_worker.Rig')
  [ "$rows" = 1 ] || fail "$w ran the upgrade script $rows times"
done
compose start "$first" >/dev/null
port=$RIG_PORT; [ "$first" = coordinator-a ] || port=$RIG_PORT_B
wait_until 60 "$first back, following" expect "$(leader)" qs_at "$port"

step "the Galera node the coordinators use killed: they move to another and carry on"
compose kill store-1 >/dev/null
qs up --timeout 120s >/dev/null || fail "up with a store node down"
[ "$(field mode)" = normal ] || fail "not normal with a store node down"
export STORE_NODE=store-2
[ "$(store_sql 'SELECT mode FROM qserv_ctl.instance')" = normal ] || fail "the store does not hold the change"

step "the killed Galera node started again: it rejoins and catches up"
compose start store-1 >/dev/null
wait_until 120 "store-1 back in a cluster of three" expect 3 store_status WSREP_CLUSTER_SIZE
export STORE_NODE=store-1
wait_until 60 "store-1 synced" expect Synced store_status WSREP_LOCAL_STATE_COMMENT
[ "$(store_sql 'SELECT mode FROM qserv_ctl.instance')" = normal ] || fail "store-1 did not catch up with the change made while it was down"

step "the whole store stopped node by node and started again: the last to leave founds it anew"
for s in store-3 store-2 store-1; do compose stop -t 30 "$s" >/dev/null; done
compose start store-1 >/dev/null
wait_until 120 "store-1 founded the cluster again" expect Synced store_status WSREP_LOCAL_STATE_COMMENT
compose start store-2 store-3 >/dev/null
wait_until 180 "three store nodes again" expect 3 store_status WSREP_CLUSTER_SIZE
wait_until 60 "a coordinator leads again" leader
qs down >/dev/null || fail "down after the store came back"
# The cluster counts a joiner before its state transfer ends; read there once it is synced.
export STORE_NODE=store-3
wait_until 60 "store-3 synced" expect Synced store_status WSREP_LOCAL_STATE_COMMENT
stored=$(store_sql 'SELECT mode FROM qserv_ctl.instance')
[ "$stored" = maintenance ] || fail "the change after the store came back is not in it (mode $stored)"

printf '\nrig scenario passed\n'
