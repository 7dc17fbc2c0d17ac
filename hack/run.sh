#!/usr/bin/env bash
# run.sh is `make run`: it starts private PostgreSQL, Redis and RabbitMQ instances for
# development (ports of their own, data in the cache folder), then the all-in-one
# `kshop` binary in the foreground. Ctrl-C stops the binary and every server it
# started. The development servers use other ports than the test servers, so
# `make run` and `make test` can run side by side.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/cachedir.sh

export KSHOP_TESTENV_DIR="$KSHOP_CACHE_DIR/run"
export KSHOP_TESTENV_SERVERS="postgres postgres-replica redis rabbitmq"
export KSHOP_TESTENV_POSTGRES_PORT="${KSHOP_RUN_POSTGRES_PORT:-14432}"
# A streaming replica of it serves the product service's reads.
export KSHOP_TESTENV_POSTGRES_REPLICA_PORT="${KSHOP_RUN_POSTGRES_REPLICA_PORT:-14433}"
export KSHOP_TESTENV_REDIS_PORT="${KSHOP_RUN_REDIS_PORT:-14379}"
export KSHOP_TESTENV_RABBITMQ_PORT="${KSHOP_RUN_RABBITMQ_PORT:-14672}"
kafka_addr="127.0.0.1:${KSHOP_RUN_KAFKA_PORT:-14092}"
gateway_addr="127.0.0.1:${KSHOP_RUN_GATEWAY_PORT:-8080}"
auth_addr="127.0.0.1:${KSHOP_RUN_AUTH_PORT:-8081}"
product_addr="127.0.0.1:${KSHOP_RUN_PRODUCT_PORT:-8082}"
order_addr="127.0.0.1:${KSHOP_RUN_ORDER_PORT:-8083}"
mail_addr="127.0.0.1:${KSHOP_RUN_MAIL_PORT:-8084}"
# Each service's /metrics is on a port of its own, never on its API port.
metrics_port="${KSHOP_RUN_METRICS_PORT:-9080}"
gateway_metrics="127.0.0.1:$metrics_port" auth_metrics="127.0.0.1:$((metrics_port + 1))" product_metrics="127.0.0.1:$((metrics_port + 2))"
order_metrics="127.0.0.1:$((metrics_port + 3))" mail_metrics="127.0.0.1:$((metrics_port + 4))"
# One database per service, as in Kubernetes.
databases="auth product order mail"

hack/install-deps.sh

kshop_pid=""
mailpit_pid=""
stop_servers() {
	if [ -n "$mailpit_pid" ]; then
		kill -TERM "$mailpit_pid" 2>/dev/null || true
	fi
	if [ -n "$kshop_pid" ]; then
		kill -TERM "$kshop_pid" 2>/dev/null || true
		wait "$kshop_pid" 2>/dev/null || true
	fi
	echo "run: stopping the development servers" >&2
	rm -f "$KSHOP_TESTENV_DIR/admin.env"
	hack/testenv.sh down || true
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

hack/testenv.sh up
# A development admin of its own for this run, so no address is an admin by
# default and no password is known: a new random pair at every start, printed
# below and kept (readable by you only) for make smoke and make load, which
# sign in with it (hack/loadgen.sh). Gone when make run stops.
admin_env="$KSHOP_TESTENV_DIR/admin.env"
dev_admin="dev-admin-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')@kshop.local"
dev_admin_password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n')"
(umask 077 && printf 'KSHOP_LOADGEN_ADMIN=%s\nKSHOP_LOADGEN_ADMIN_PASSWORD=%s\n' "$dev_admin" "$dev_admin_password" >"$admin_env")
pg_url="postgres://postgres@127.0.0.1:$KSHOP_TESTENV_POSTGRES_PORT"
for db in $databases; do
	psql -q "$pg_url/postgres" -c "CREATE DATABASE \"$db\"" >/dev/null # quoted: order is a keyword
done
replica_url="postgres://postgres@127.0.0.1:$KSHOP_TESTENV_POSTGRES_REPLICA_PORT"
redis_addr="127.0.0.1:$KSHOP_TESTENV_REDIS_PORT"
amqp_url="amqp://guest:guest@127.0.0.1:$KSHOP_TESTENV_RABBITMQ_PORT/"

mailpit="$(hack/tools.sh mailpit)"
smtp_port="${KSHOP_RUN_SMTP_PORT:-1025}"
inbox_addr="127.0.0.1:${KSHOP_RUN_INBOX_PORT:-8025}"
"$mailpit" --smtp "127.0.0.1:$smtp_port" --listen "$inbox_addr" --disable-version-check --max 2000 \
	>"$KSHOP_TESTENV_DIR/mailpit.log" 2>&1 &
mailpit_pid=$!

echo "run: building the kshop binary" >&2
mkdir -p "$KSHOP_CACHE_DIR/bin"
go build -tags nomsgpack -o "$KSHOP_CACHE_DIR/bin/kshop" ./services/cmd/kshop

cat >&2 <<EOF

kshop development platform
  gateway     http://$gateway_addr   (the API: curl -s http://$gateway_addr/products; docs at /openapi.json)
  mail inbox  http://$inbox_addr   (Mailpit: every e-mail the platform sends)
  auth        http://$auth_addr   (try: curl -s http://$auth_addr/.well-known/jwks.json)
  product     http://$product_addr   (try: curl -s http://$product_addr/products)
  order       http://$order_addr   (docs/order.md)
  mail        http://$mail_addr   (health; sends to Mailpit's SMTP on 127.0.0.1:$smtp_port)
  metrics     http://$gateway_metrics/metrics (gateway), $auth_metrics auth, $product_metrics product, $order_metrics order, $mail_metrics mail
  identity    the gateway signs each caller's identity for product and order with a key made for this run
  PostgreSQL  $pg_url/<service>   (databases: $databases)
  replica     $replica_url/product   (streaming replica; the product service reads there)
  Redis       $redis_addr
  RabbitMQ    $amqp_url
  Kafka       $kafka_addr (in-process Kafka-protocol broker; try: kcat -b $kafka_addr -L)
  Admin       $dev_admin, this run's development admin (password: $admin_env)${KSHOP_AUTH_ADMIN_EMAILS:+; also $KSHOP_AUTH_ADMIN_EMAILS}
  Timers      reminders after ${KSHOP_ORDER_REMINDER_DELAYS:-10s,20s,30s}, expiry after ${KSHOP_ORDER_EXPIRY_DELAY:-45s} (shortened for development)
Check it: make smoke (the whole journey, about a minute); load it: make load.
Press Ctrl-C to stop everything.

EOF

# Not exec: the trap above must outlive the binary to stop the servers.
export KSHOP_DEV_KAFKA_ADDR="$kafka_addr"
export KSHOP_AUTH_HTTP_ADDR="$auth_addr"
export KSHOP_AUTH_METRICS_ADDR="$auth_metrics"
export KSHOP_AUTH_DATABASE_URL="$pg_url/auth"
export KSHOP_AUTH_REDIS_ADDRS="$redis_addr"
export KSHOP_AUTH_AMQP_URL="$amqp_url"
export KSHOP_AUTH_ADMIN_EMAILS="${KSHOP_AUTH_ADMIN_EMAILS:+$KSHOP_AUTH_ADMIN_EMAILS,}$dev_admin"
# make smoke walks the journey again and again: more e-mails a day per address.
export KSHOP_AUTH_MAILS_PER_DAY="${KSHOP_AUTH_MAILS_PER_DAY:-1000}"
# The Postman collection and docs/kshop.http ask for a password reset seconds
# after registering: one e-mail per address every 5 s, not every minute.
export KSHOP_AUTH_RESEND_COOLDOWN="${KSHOP_AUTH_RESEND_COOLDOWN:-5s}"
export KSHOP_PRODUCT_HTTP_ADDR="$product_addr"
export KSHOP_PRODUCT_METRICS_ADDR="$product_metrics"
export KSHOP_PRODUCT_DATABASE_URL="$pg_url/product"
export KSHOP_PRODUCT_DATABASE_REPLICA_URL="$replica_url/product"
export KSHOP_PRODUCT_KAFKA_BROKERS="$kafka_addr"
export KSHOP_ORDER_HTTP_ADDR="$order_addr"
export KSHOP_ORDER_METRICS_ADDR="$order_metrics"
export KSHOP_ORDER_DATABASE_URL="$pg_url/order"
export KSHOP_ORDER_REDIS_ADDRS="$redis_addr"
export KSHOP_ORDER_KAFKA_BROKERS="$kafka_addr"
export KSHOP_ORDER_AMQP_URL="$amqp_url"
# Timers in seconds, so reminders and expiry can be watched (and make smoke checks them).
export KSHOP_ORDER_REMINDER_DELAYS="${KSHOP_ORDER_REMINDER_DELAYS:-10s,20s,30s}"
export KSHOP_ORDER_EXPIRY_DELAY="${KSHOP_ORDER_EXPIRY_DELAY:-45s}"
# make load's handful of customers keeps many orders unpaid at once; the
# anti-hoarding limits (20 orders, 1000 units by default) are for real customers.
export KSHOP_ORDER_MAX_PENDING_ORDERS="${KSHOP_ORDER_MAX_PENDING_ORDERS:-1000}"
export KSHOP_ORDER_MAX_PENDING_UNITS="${KSHOP_ORDER_MAX_PENDING_UNITS:-100000}"
export KSHOP_MAIL_HTTP_ADDR="$mail_addr"
export KSHOP_MAIL_METRICS_ADDR="$mail_metrics"
export KSHOP_MAIL_DATABASE_URL="$pg_url/mail"
export KSHOP_MAIL_AMQP_URL="$amqp_url"
export KSHOP_MAIL_SMTP_HOST=127.0.0.1 KSHOP_MAIL_SMTP_PORT="$smtp_port" KSHOP_MAIL_SMTP_TLS=none
export KSHOP_GATEWAY_HTTP_ADDR="$gateway_addr"
export KSHOP_GATEWAY_METRICS_ADDR="$gateway_metrics"
# Generous limits: every local client shares 127.0.0.1 (make load sends from it).
export KSHOP_GATEWAY_RATE_LIMITS="${KSHOP_GATEWAY_RATE_LIMITS:-auth=300/m,products=2000/s,orders=500/s}"
export KSHOP_GATEWAY_REDIS_ADDRS="$redis_addr"
export KSHOP_GATEWAY_AUTH_URL="http://$auth_addr"
export KSHOP_GATEWAY_PRODUCT_URL="http://$product_addr"
export KSHOP_GATEWAY_ORDER_URL="http://$order_addr"
"$KSHOP_CACHE_DIR/bin/kshop" &
kshop_pid=$!
wait "$kshop_pid" || true
kshop_pid=""
