// Package chaos holds the chaos test (make chaos, build tag "chaos"): the whole
// platform under load while RabbitMQ, the Kafka broker process and PostgreSQL
// are each stopped and started again, then a reconciliation of every database
// and broker that fails on any lost, stuck, duplicated or oversold thing.
//
// It stops servers, so it runs only against servers of its own, which
// hack/chaos.sh starts; it refuses the shared test servers.
package chaos
