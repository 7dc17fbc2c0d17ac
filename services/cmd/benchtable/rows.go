package main

import "fmt"

// Benchmark names as go test prints them, without the -GOMAXPROCS suffix.
const (
	gatewayInstant = "BenchmarkGatewayVsDirect/upstream=0s"
	gatewaySlow    = "BenchmarkGatewayVsDirect/upstream=1ms"
	gatewayFixed   = "BenchmarkGatewayAtFixedRate"
	bareGin        = "BenchmarkBareGin"
	getProduct     = "BenchmarkGetProduct"
	reserve        = "BenchmarkReserve"
	sagaLatency    = "BenchmarkOrderCreatedToStockReserved"
	placement      = "BenchmarkOrderPlacement"
	orderable      = "BenchmarkProductOrderable"
	timers         = "BenchmarkTimerLateness"
	processes      = "BenchmarkServiceProcesses"
	allInOne       = "BenchmarkAllInOneProcess"
)

// rows turns the figures into the table, each beside what it compares with.
func rows(r Results, pg *pgbenchResult) []Row {
	m := func(benchmark, unit string) string { return metric(r, benchmark, unit) }
	ginCeiling := fmt.Sprintf("ceiling, bare gin: %s req/s, p99 %s ms", m(bareGin, "req/s"), m(bareGin, "p99-ms"))
	pgTPS, pgLatency := "not measured", "not measured"
	if pg != nil {
		pgTPS, pgLatency = Number(pg.tps), Number(pg.latencyMs)
	}
	gateway := func(benchmark, upstream string) Row {
		return Row{
			Measure: "Gateway: GET /products/1, 16 clients, upstream " + upstream,
			Figure:  fmt.Sprintf("%s req/s, p99 %s ms", m(benchmark, "gateway-req/s"), m(benchmark, "gateway-p99-ms")),
			Comparison: fmt.Sprintf("direct to the upstream: %s req/s, p99 %s ms; ratio %s; %s",
				m(benchmark, "direct-req/s"), m(benchmark, "direct-p99-ms"), m(benchmark, "ratio"), ginCeiling),
		}
	}
	table := []Row{
		gateway(gatewayInstant, "answering at once"),
		gateway(gatewaySlow, "working 1 ms"),
		{
			Measure: "Gateway: GET /products/1 at a fixed 800 req/s for 15 s (open loop), upstream answering at once",
			Figure: fmt.Sprintf("p50 %s ms, p99 %s ms, max %s ms; adds %s ms to the p99",
				m(gatewayFixed, "gateway-p50-ms"), m(gatewayFixed, "gateway-p99-ms"), m(gatewayFixed, "gateway-max-ms"), m(gatewayFixed, "added-p99-ms")),
			Comparison: fmt.Sprintf("direct: p50 %s ms, p99 %s ms, max %s ms; ceilings: adds at most 1 ms to the p99, max under 20 ms",
				m(gatewayFixed, "direct-p50-ms"), m(gatewayFixed, "direct-p99-ms"), m(gatewayFixed, "direct-max-ms")),
		},
		{
			Measure:    "Product service: GET /products/:id, 16 clients",
			Figure:     fmt.Sprintf("%s req/s, p99 %s ms", m(getProduct, "req/s"), m(getProduct, "p99-ms")),
			Comparison: ginCeiling,
		},
		{
			Measure: fmt.Sprintf("Order placement: %s orders, 16 clients, one product with stock for half of them", m(placement, "runs")),
			Figure: fmt.Sprintf("%s orders/s decided (%s/s accepted); %s rejected; units oversold: %s",
				m(placement, "decided-orders/s"), m(placement, "accepted-orders/s"), m(placement, "rejected-orders"), m(placement, "oversold-units")),
			Comparison: fmt.Sprintf("the reservation transaction alone: %s orders/s; ceiling, pgbench: %s tps", m(reserve, "orders/s"), pgTPS),
		},
		{
			Measure: "Orders through the gateway, as processes: 16 clients place and pay orders for 60 s",
			Figure: fmt.Sprintf("%s orders/s accepted, %s/s decided; undecided halfway %s, at the end %s (drained %s s later); %s paid, %s failed",
				m(processes, "orders-accepted/s"), m(processes, "orders-decided/s"), m(processes, "orders-undecided-halfway"),
				m(processes, "orders-undecided-at-end"), m(processes, "orders-drain-s"), m(processes, "orders-paid"), m(processes, "orders-failed")),
			Comparison: fmt.Sprintf("CPU per order %s ms: gateway %s, order %s, product %s, auth %s, mail %s, PostgreSQL %s, Redis %s (Kafka and RabbitMQ not counted); "+
				"ceilings: 1 100 orders/s, a backlog that does not grow, 1.5 ms CPU per order",
				m(processes, "cpu-ms/order"), m(processes, "gateway-cpu-ms/order"), m(processes, "order-cpu-ms/order"), m(processes, "product-cpu-ms/order"),
				m(processes, "auth-cpu-ms/order"), m(processes, "mail-cpu-ms/order"), m(processes, "postgres-cpu-ms/order"), m(processes, "redis-cpu-ms/order")),
		},
		{
			Measure: fmt.Sprintf("A just-created product orderable: %s products, each ordered at once until accepted", m(orderable, "runs")),
			Figure: fmt.Sprintf("p50 %s ms, p99 %s ms, max %s ms; the first after the services' start %s ms",
				m(orderable, "p50-ms"), m(orderable, "p99-ms"), m(orderable, "max-ms"), m(orderable, "first-ms")),
			Comparison: fmt.Sprintf("meanwhile the order service answered 409 \"product not available yet\" (Retry-After 1) %s times, never 404", m(orderable, "retry-answers")),
		},
		{
			Measure:    "order-created → stock-reserved, one order at a time",
			Figure:     fmt.Sprintf("p50 %s ms, p99 %s ms", m(sagaLatency, "p50-ms"), m(sagaLatency, "p99-ms")),
			Comparison: fmt.Sprintf("ceiling, pgbench: %s ms a single-row UPDATE (average, 8 clients)", pgLatency),
		},
		{
			Measure: fmt.Sprintf("Timer lateness, %s orders pending (reminder at 40 s, expiry at 60 s)", m(timers, "pending-orders")),
			Figure: fmt.Sprintf("reminders p50 %s ms, p99 %s ms, max %s ms; expiry p50 %s ms, p99 %s ms, max %s ms",
				m(timers, "reminder-late-p50-ms"), m(timers, "reminder-late-p99-ms"), m(timers, "reminder-late-max-ms"),
				m(timers, "expiry-late-p50-ms"), m(timers, "expiry-late-p99-ms"), m(timers, "expiry-late-max-ms")),
			Comparison: fmt.Sprintf("timers fell due at %s/s (the placement rate); reminders fired at %s/s, expiries at %s/s; "+
				"the outbox relay's lag putting timers on their delay queues: p50 %s ms, p99 %s ms",
				m(timers, "placed-orders/s"), m(timers, "reminders-fired/s"), m(timers, "expiries-fired/s"),
				m(timers, "timer-relay-lag-p50-ms"), m(timers, "timer-relay-lag-p99-ms")),
		},
	}
	for _, service := range []string{"gateway", "auth", "product", "order", "mail"} {
		memory := func(when string) string {
			return fmt.Sprintf("%s (%s anonymous, heap %s)",
				m(processes, service+"-"+when+"-rss-MB"), m(processes, service+"-"+when+"-anon-MB"), m(processes, service+"-"+when+"-heap-MB"))
		}
		table = append(table, Row{
			Measure: service + " process: resident memory in MB idle / at the peak of the load / after it (its anonymous part, Go live heap); CPU per request",
			Figure: fmt.Sprintf("%s / %s / %s; %s ms CPU per request; ready %s ms after start",
				memory("idle"), memory("load"), memory("after"), m(processes, service+"-cpu-ms/req"), m(processes, service+"-ready-ms")),
			Comparison: fmt.Sprintf("load: %s req/s of browse, search, order, pay through the gateway for %s s, %s failed, "+
				"costing PostgreSQL %s ms and Redis %s ms CPU per request besides; "+
				"ceilings: anonymous under 40 MB idle and 64 MB under load (the rest is the binary's own pages)",
				m(processes, "load-req/s"), m(processes, "load-s"), m(processes, "load-failed-requests"),
				m(processes, "postgres-cpu-ms/req"), m(processes, "redis-cpu-ms/req")),
		})
	}
	allInOneMemory := func(when string) string {
		return fmt.Sprintf("%s (%s anonymous, heap %s)", m(allInOne, "kshop-"+when+"-rss-MB"), m(allInOne, "kshop-"+when+"-anon-MB"), m(allInOne, "kshop-"+when+"-heap-MB"))
	}
	table = append(table, Row{
		Measure: "All-in-one process of `make run` (every service and the development Kafka broker): resident memory in MB idle / at the peak of the load / after it (its anonymous part, Go live heap)",
		Figure: fmt.Sprintf("%s / %s / %s; ready %s ms after start",
			allInOneMemory("idle"), allInOneMemory("load"), allInOneMemory("after"), m(allInOne, "kshop-ready-ms")),
		Comparison: fmt.Sprintf("the same load: %s req/s for %s s, %s failed; the broker drops every 30 s what every consumer group has committed past; ceiling: under 200 MB resident",
			m(allInOne, "load-req/s"), m(allInOne, "load-s"), m(allInOne, "load-failed-requests")),
	})
	return append(table,
		Row{
			Measure:    "Ceiling: a bare gin handler on loopback, same client as the gateway row",
			Figure:     fmt.Sprintf("%s req/s, p99 %s ms", m(bareGin, "req/s"), m(bareGin, "p99-ms")),
			Comparison: "gin.New(), one route, no middleware",
		},
		Row{
			Measure:    "Ceiling: pgbench, single-row UPDATE by primary key on the same PostgreSQL",
			Figure:     fmt.Sprintf("%s tps, %s ms average", pgTPS, pgLatency),
			Comparison: "pgbench -n -f update.sql -c 8 -j 2 -T 10, 100 000 rows",
		},
	)
}
