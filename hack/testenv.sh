#!/usr/bin/env bash
# testenv.sh starts and stops the private servers the tests talk to: PostgreSQL
# and a streaming replica of it, Redis (standalone and a 6-node cluster) and two
# RabbitMQ nodes (one shared, one that tests may stop and start). Everything runs on loopback, on ports that never
# collide with the system's own services, with its data in a cache folder outside
# the work tree.
#
#   hack/testenv.sh up            start everything (stops leftovers of an earlier run first)
#   hack/testenv.sh down          stop everything this script started
#   hack/testenv.sh env           print the export lines the tests read
#   hack/testenv.sh status        show what is running
#   hack/testenv.sh stop NAME     stop one server (postgres, postgres-replica, redis, redis-cluster, rabbitmq, rabbitmq-restartable)
#   hack/testenv.sh start NAME    start one server again, keeping its data
#   hack/testenv.sh vhost NAME    create a RabbitMQ virtual host on the shared node (tests use it)
#   hack/testenv.sh user NAME PASSWORD VHOST [CONFIGURE WRITE READ]
#                                 create a RabbitMQ user on the shared node with every right on VHOST
#                                 (or the permission patterns given)
#
# Ports and folder can be moved with KSHOP_TESTENV_DIR and KSHOP_TESTENV_*_PORT
# (see below); KSHOP_TESTENV_SERVERS="postgres redis rabbitmq" starts a subset.
# KSHOP_TESTENV_HOST listens on another local address than 127.0.0.1 (the test
# cluster's bridge address, for servers that pods reach); KSHOP_TESTENV_CLIENTS
# (a CIDR) lets those clients into PostgreSQL with a password, and
# KSHOP_TESTENV_REDIS_PASSWORD makes Redis ask for one.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cachedir.sh
source "$HACK_DIR/cachedir.sh"

STATE_DIR="${KSHOP_TESTENV_DIR:-$KSHOP_CACHE_DIR/testenv}"
HOST="${KSHOP_TESTENV_HOST:-127.0.0.1}"
# Clients other than this machine itself (pods of the test cluster) that may log
# in to PostgreSQL with a password; the machine's own addresses are trusted.
CLIENTS="${KSHOP_TESTENV_CLIENTS:-}"
# redis-cli reads the password from the environment, so it never shows in ps.
if [ -n "${KSHOP_TESTENV_REDIS_PASSWORD:-}" ]; then export REDISCLI_AUTH="$KSHOP_TESTENV_REDIS_PASSWORD"; fi
# Every port sits below Linux's ephemeral range (32768-60999): a listener on an
# ephemeral port can find it taken by some outgoing connection's source port, or
# by a readiness probe connecting to itself, and then fail with EADDRINUSE. The
# RabbitMQ nodes use port+1 for Erlang distribution (and their CLI port+10001..).
POSTGRES_PORT="${KSHOP_TESTENV_POSTGRES_PORT:-15432}"
# The replica streams from the primary; the port next to it unless told.
POSTGRES_REPLICA_PORT="${KSHOP_TESTENV_POSTGRES_REPLICA_PORT:-$((POSTGRES_PORT + 1))}"
REDIS_PORT="${KSHOP_TESTENV_REDIS_PORT:-16379}"
# The cluster bus listens 10000 above each node (27001-27006 by default).
REDIS_CLUSTER_FIRST_PORT="${KSHOP_TESTENV_REDIS_CLUSTER_PORT:-17001}"
RABBITMQ_PORT="${KSHOP_TESTENV_RABBITMQ_PORT:-18672}"
RABBITMQ_RESTARTABLE_PORT="${KSHOP_TESTENV_RABBITMQ_RESTARTABLE_PORT:-18682}"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

pg_bin() {
	local dir
	dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
	[ -n "$dir" ] || die "PostgreSQL is not installed: run hack/install-deps.sh"
	printf '%s/%s' "$dir" "$1"
}

# PostgreSQL refuses to run as root, so as root its files belong to the postgres user.
as_postgres() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for_port() { # name port seconds
	local name=$1 port=$2 seconds=$3 i
	for ((i = 0; i < seconds * 10; i++)); do
		if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "$name did not open $HOST:$port within ${seconds}s; see its log in $STATE_DIR/$name"
}

# ---------------------------------------------------------------- PostgreSQL
postgres_start() {
	local dir="$STATE_DIR/postgres"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		log "initialising PostgreSQL in $dir"
		mkdir -p "$dir"
		[ "$(id -u)" = 0 ] && chown postgres: "$dir"
		as_postgres "$(pg_bin initdb)" --pgdata="$dir/data" --username=postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			die "initdb failed, see $dir/initdb.log"
		# Tests need speed and many connections, never durability.
		cat >>"$dir/data/postgresql.conf" <<-EOF
			listen_addresses = '$HOST'
			port = $POSTGRES_PORT
			unix_socket_directories = '$dir'
			max_connections = 400
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			wal_level = replica
			max_wal_senders = 4
			max_replication_slots = 4
			max_slot_wal_keep_size = 1GB
		EOF
		if [ "$HOST" != 127.0.0.1 ]; then
			echo "host all all $HOST/32 trust" >>"$dir/data/pg_hba.conf"
			echo "host replication all $HOST/32 trust" >>"$dir/data/pg_hba.conf"
		fi
		if [ -n "$CLIENTS" ]; then
			echo "host all all $CLIENTS scram-sha-256" >>"$dir/data/pg_hba.conf"
		fi
	fi
	log "starting PostgreSQL on $HOST:$POSTGRES_PORT"
	as_postgres "$(pg_bin pg_ctl)" --pgdata="$dir/data" --log="$dir/postgres.log" --wait --timeout=60 start >/dev/null ||
		die "PostgreSQL did not start, see $dir/postgres.log"
}

postgres_stop() {
	local dir="$STATE_DIR/postgres"
	[ -f "$dir/data/postmaster.pid" ] || return 0
	log "stopping PostgreSQL"
	as_postgres "$(pg_bin pg_ctl)" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null 2>&1 || true
}

# A hot standby cloned from the primary with pg_basebackup: standby.signal and
# primary_conninfo (written by --write-recovery-conf) make it stream the
# primary's WAL and serve read-only queries. A replication slot keeps the WAL
# it has not received yet, so a test may stop it for a while and start it again.
postgres_replica_start() {
	local dir="$STATE_DIR/postgres-replica"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		(exec 3<>"/dev/tcp/$HOST/$POSTGRES_PORT") 2>/dev/null || die "the replica needs the primary: start postgres first"
		log "cloning PostgreSQL into a streaming replica in $dir (pg_basebackup)"
		mkdir -p "$dir"
		[ "$(id -u)" = 0 ] && chown postgres: "$dir"
		as_postgres "$(pg_bin psql)" -qAt -h "$HOST" -p "$POSTGRES_PORT" -U postgres -d postgres \
			-c "SELECT pg_drop_replication_slot('kshop_replica') FROM pg_replication_slots WHERE slot_name = 'kshop_replica'" >/dev/null ||
			die "could not clear the replication slot on the primary"
		as_postgres "$(pg_bin pg_basebackup)" --host="$HOST" --port="$POSTGRES_PORT" --username=postgres \
			--pgdata="$dir/data" --wal-method=stream --write-recovery-conf --checkpoint=fast \
			--create-slot --slot=kshop_replica >"$dir/basebackup.log" 2>&1 ||
			die "pg_basebackup failed, see $dir/basebackup.log"
		# The copy carries the primary's settings; the last line of a setting wins.
		# Replay never waits more than a second for a conflicting read (the read
		# is cancelled instead), so a test's replica never falls far behind.
		cat >>"$dir/data/postgresql.conf" <<-EOF
			port = $POSTGRES_REPLICA_PORT
			unix_socket_directories = '$dir'
			hot_standby = on
			hot_standby_feedback = on
			max_standby_streaming_delay = 1s
			wal_receiver_status_interval = 1s
		EOF
	fi
	log "starting the PostgreSQL replica on $HOST:$POSTGRES_REPLICA_PORT"
	as_postgres "$(pg_bin pg_ctl)" --pgdata="$dir/data" --log="$dir/postgres.log" --wait --timeout=60 start >/dev/null ||
		die "the PostgreSQL replica did not start, see $dir/postgres.log"
}

postgres_replica_stop() {
	local dir="$STATE_DIR/postgres-replica"
	[ -f "$dir/data/postmaster.pid" ] || return 0
	log "stopping the PostgreSQL replica"
	as_postgres "$(pg_bin pg_ctl)" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- Redis
redis_node_start() { # dir port [extra args...]
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	redis-server --bind "$HOST" --port "$port" --dir "$dir" --daemonize yes \
		--pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
		--save "" --appendonly no --protected-mode no "$@" ||
		die "redis-server on port $port did not start, see $dir/redis.log"
}

redis_node_stop() { # dir port
	local dir=$1 port=$2
	[ -f "$dir/redis.pid" ] || return 0
	redis-cli -h "$HOST" -p "$port" shutdown nosave >/dev/null 2>&1 || true
	kill_pidfile "$dir/redis.pid"
}

redis_start() {
	local auth=()
	[ -z "${KSHOP_TESTENV_REDIS_PASSWORD:-}" ] || auth=(--requirepass "$KSHOP_TESTENV_REDIS_PASSWORD")
	log "starting Redis on $HOST:$REDIS_PORT"
	redis_node_start "$STATE_DIR/redis" "$REDIS_PORT" "${auth[@]}"
	wait_for_port redis "$REDIS_PORT" 10
}

redis_stop() { redis_node_stop "$STATE_DIR/redis" "$REDIS_PORT"; }

redis_cluster_ports() { seq "$REDIS_CLUSTER_FIRST_PORT" $((REDIS_CLUSTER_FIRST_PORT + 5)); }

redis_cluster_start() {
	local port addrs=() fresh=0
	log "starting a 6-node Redis Cluster (3 masters, 3 replicas) on $HOST:$REDIS_CLUSTER_FIRST_PORT-$((REDIS_CLUSTER_FIRST_PORT + 5))"
	[ -f "$STATE_DIR/redis-cluster/$REDIS_CLUSTER_FIRST_PORT/nodes.conf" ] || fresh=1
	for port in $(redis_cluster_ports); do
		redis_node_start "$STATE_DIR/redis-cluster/$port" "$port" \
			--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
		addrs+=("$HOST:$port")
	done
	for port in $(redis_cluster_ports); do wait_for_port redis-cluster "$port" 10; done
	if [ "$fresh" = 1 ]; then
		redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
			>"$STATE_DIR/redis-cluster/create.log" 2>&1 ||
			die "redis-cli --cluster create failed, see $STATE_DIR/redis-cluster/create.log"
	fi
	local i
	for ((i = 0; i < 300; i++)); do
		local ok=1
		for port in $(redis_cluster_ports); do
			redis-cli -h "$HOST" -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	die "the Redis Cluster did not reach cluster_state:ok in 30s; see $STATE_DIR/redis-cluster/*/redis.log"
}

redis_cluster_stop() {
	local port
	for port in $(redis_cluster_ports); do redis_node_stop "$STATE_DIR/redis-cluster/$port" "$port"; done
}

# ---------------------------------------------------------------- RabbitMQ
# The private nodes use Debian's real scripts under /usr/lib/rabbitmq/bin directly (the
# /usr/sbin wrappers switch to the system's rabbitmq user and its files), with a home,
# cookie, config and plugin list of their own so nothing of the system node leaks in.
rabbitmq_env() { # name port
	local name=$1 port=$2 dir="$STATE_DIR/$1"
	export HOME="$dir/home"
	export RABBITMQ_NODENAME="kshop-$name-$port@localhost"
	export RABBITMQ_NODE_IP_ADDRESS="$HOST"
	export RABBITMQ_NODE_PORT="$port"
	export RABBITMQ_DIST_PORT=$((port + 1))
	export RABBITMQ_MNESIA_BASE="$dir/mnesia"
	export RABBITMQ_LOG_BASE="$dir/log"
	export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
	export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
	export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
	export RABBITMQ_ENABLED_PLUGINS=""
	export RABBITMQ_USE_LONGNAME=false
	# rabbitmqctl is Elixir: without a UTF-8 locale (CI's environment may have
	# none) it reads its arguments as Latin-1, and a password with a non-ASCII
	# character is stored as other bytes than the client sends.
	export LC_ALL=C.UTF-8
	# Erlang distribution (used by rabbitmqctl) on loopback only, like everything else.
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbitmq_ctl() { # name port args...
	local name=$1 port=$2
	shift 2
	(rabbitmq_env "$name" "$port" && /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" "$@")
}

rabbitmq_start() { # name port
	local name=$1 port=$2 dir="$STATE_DIR/$1"
	[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "RabbitMQ is not installed: run hack/install-deps.sh"
	mkdir -p "$dir/home" "$dir/log" "$dir/mnesia"
	if [ ! -f "$dir/home/.erlang.cookie" ]; then
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
		chmod 400 "$dir/home/.erlang.cookie"
	fi
	printf '[].\n' >"$dir/enabled_plugins"
	printf '[].\n' >"$dir/advanced.config"
	: >"$dir/rabbitmq-env.conf"
	cat >"$dir/rabbitmq.conf" <<-EOF
		loopback_users.guest = true
		disk_free_limit.absolute = 50MB
		vm_memory_high_watermark.relative = 0.2
		log.console = false
		log.file.level = warning
	EOF
	log "starting RabbitMQ node $name on $HOST:$port (takes 5-20 s)"
	(
		rabbitmq_env "$name" "$port"
		cd "$dir"
		nohup /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/log/startup.log" 2>&1 &
		echo $! >"$dir/server.pid"
	)
	wait_for_port "$name" "$port" 90
	rabbitmq_ctl "$name" "$port" await_startup --timeout 60 >/dev/null 2>&1 ||
		die "RabbitMQ node $name did not finish starting, see $dir/log"
}

rabbitmq_stop() { # name port
	local name=$1 port=$2 dir="$STATE_DIR/$1"
	[ -f "$dir/server.pid" ] || return 0
	log "stopping RabbitMQ node $name"
	rabbitmq_ctl "$name" "$port" stop >/dev/null 2>&1 || true
	kill_pidfile "$dir/server.pid"
	kill_pidfile "$dir/rabbitmq.pid"
}

# rabbitmq_vhost gives a test process a virtual host of its own on the shared node,
# so packages tested side by side can use the contract's fixed queue names without
# taking each other's messages. One CLI call (an Erlang VM start, about 2 s).
rabbitmq_vhost() { # name
	local name=$1 file
	[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "vhost name '$name' must be letters, digits, . _ -"
	file="$(mktemp)"
	printf '{"vhosts":[{"name":"%s"}],"permissions":[{"user":"guest","vhost":"%s","configure":".*","write":".*","read":".*"}]}\n' "$name" "$name" >"$file"
	rabbitmq_ctl rabbitmq "$RABBITMQ_PORT" import_definitions "$file" >/dev/null || { rm -f "$file"; die "could not create RabbitMQ vhost $name"; }
	rm -f "$file"
}

# rabbitmq_user gives a test a user other than guest (guest may only come from
# loopback, a remote client never can), with every right on one virtual host,
# or the configure, write and read patterns given (a deployment's permissions).
# The password may hold any character: it travels as one argument, never through
# a shell. Two CLI calls (1-4 s); calling it again sets the password anew.
rabbitmq_user() { # name password vhost [configure write read]
	local name=$1 password=$2 vhost=$3 configure=${4:-.*} write=${5:-.*} read=${6:-.*}
	[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "user name '$name' must be letters, digits, . _ -"
	[[ "$password" != -* ]] || die "the password must not start with '-' (rabbitmqctl would take it for an option)"
	# A user left by an earlier call gets the new password instead.
	rabbitmq_ctl rabbitmq "$RABBITMQ_PORT" add_user "$name" "$password" >/dev/null 2>&1 ||
		rabbitmq_ctl rabbitmq "$RABBITMQ_PORT" change_password "$name" "$password" >/dev/null ||
		die "could not create RabbitMQ user $name"
	rabbitmq_ctl rabbitmq "$RABBITMQ_PORT" set_permissions -p "$vhost" "$name" "$configure" "$write" "$read" >/dev/null ||
		die "could not give RabbitMQ user $name the vhost $vhost"
}

# ---------------------------------------------------------------- bookkeeping
kill_pidfile() {
	local file=$1 pid i
	[ -f "$file" ] || return 0
	pid="$(cat "$file" 2>/dev/null || true)"
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
}

print_env() {
	local cluster="" port
	for port in $(redis_cluster_ports); do cluster="${cluster:+$cluster,}$HOST:$port"; done
	cat <<-EOF
		export KSHOP_TEST_POSTGRES_URL='postgres://postgres@$HOST:$POSTGRES_PORT/postgres?sslmode=disable'
		export KSHOP_TEST_POSTGRES_REPLICA_URL='postgres://postgres@$HOST:$POSTGRES_REPLICA_PORT/postgres?sslmode=disable'
		export KSHOP_TEST_REDIS_ADDR='$HOST:$REDIS_PORT'
		export KSHOP_TEST_REDIS_CLUSTER_ADDRS='$cluster'
		export KSHOP_TEST_AMQP_URL='amqp://guest:guest@$HOST:$RABBITMQ_PORT/'
		export KSHOP_TEST_AMQP_RESTARTABLE_URL='amqp://guest:guest@$HOST:$RABBITMQ_RESTARTABLE_PORT/'
		export KSHOP_TESTENV='$HACK_DIR/testenv.sh'
		export KSHOP_TESTENV_DIR='$STATE_DIR'
		export KSHOP_TESTENV_HOST='$HOST' KSHOP_TESTENV_POSTGRES_PORT='$POSTGRES_PORT' KSHOP_TESTENV_REDIS_PORT='$REDIS_PORT'
		export KSHOP_TESTENV_POSTGRES_REPLICA_PORT='$POSTGRES_REPLICA_PORT'
		export KSHOP_TESTENV_REDIS_CLUSTER_PORT='$REDIS_CLUSTER_FIRST_PORT' KSHOP_TESTENV_RABBITMQ_PORT='$RABBITMQ_PORT'
		export KSHOP_TESTENV_RABBITMQ_RESTARTABLE_PORT='$RABBITMQ_RESTARTABLE_PORT'
	EOF
}

start_one() {
	case "$1" in
	postgres) postgres_start ;;
	postgres-replica) postgres_replica_start ;;
	redis) redis_start ;;
	redis-cluster) redis_cluster_start ;;
	rabbitmq) rabbitmq_start rabbitmq "$RABBITMQ_PORT" ;;
	rabbitmq-restartable) rabbitmq_start rabbitmq-restartable "$RABBITMQ_RESTARTABLE_PORT" ;;
	*) die "unknown server '$1' (postgres, postgres-replica, redis, redis-cluster, rabbitmq, rabbitmq-restartable)" ;;
	esac
}

stop_one() {
	case "$1" in
	postgres) postgres_stop ;;
	postgres-replica) postgres_replica_stop ;;
	redis) redis_stop ;;
	redis-cluster) redis_cluster_stop ;;
	rabbitmq) rabbitmq_stop rabbitmq "$RABBITMQ_PORT" ;;
	rabbitmq-restartable) rabbitmq_stop rabbitmq-restartable "$RABBITMQ_RESTARTABLE_PORT" ;;
	*) die "unknown server '$1' (postgres, postgres-replica, redis, redis-cluster, rabbitmq, rabbitmq-restartable)" ;;
	esac
}

ALL="postgres postgres-replica redis redis-cluster rabbitmq rabbitmq-restartable"
# make run needs fewer servers than the tests: KSHOP_TESTENV_SERVERS picks them.
SERVERS="${KSHOP_TESTENV_SERVERS:-$ALL}"
wants() { [[ " $SERVERS " == *" $1 "* ]]; }

down() {
	local name
	for name in $ALL; do stop_one "$name"; done
}

up() {
	down # leftovers of an interrupted run
	rm -rf "$STATE_DIR"
	mkdir -p "$STATE_DIR"
	[ "$(id -u)" = 0 ] && chmod 755 "$STATE_DIR"
	local started=$SECONDS pids=() name failed=0
	# The slow RabbitMQ nodes start side by side with the rest.
	for name in rabbitmq rabbitmq-restartable; do
		wants "$name" || continue
		start_one "$name" &
		pids+=($!)
	done
	for name in postgres postgres-replica redis redis-cluster; do
		if wants "$name"; then start_one "$name"; fi
	done
	for name in "${pids[@]}"; do wait "$name" || failed=1; done
	[ "$failed" = 0 ] || die "a RabbitMQ node did not start"
	print_env >"$STATE_DIR/env"
	log "all servers up in $((SECONDS - started))s; their addresses are in $STATE_DIR/env"
}

status() {
	local name
	for name in $ALL; do
		case "$name" in
		postgres) port=$POSTGRES_PORT ;;
		postgres-replica) port=$POSTGRES_REPLICA_PORT ;;
		redis) port=$REDIS_PORT ;;
		redis-cluster) port=$REDIS_CLUSTER_FIRST_PORT ;;
		rabbitmq) port=$RABBITMQ_PORT ;;
		rabbitmq-restartable) port=$RABBITMQ_RESTARTABLE_PORT ;;
		esac
		if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then state=up; else state=down; fi
		printf '%-22s %s:%s %s\n' "$name" "$HOST" "$port" "$state"
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
env) print_env ;;
status) status ;;
start) start_one "${2:?name a server}" ;;
stop) stop_one "${2:?name a server}" ;;
vhost) rabbitmq_vhost "${2:?name the vhost}" ;;
user) rabbitmq_user "${2:?name the user}" "${3:?give the password}" "${4:?name the vhost}" "${@:5}" ;;
*) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
