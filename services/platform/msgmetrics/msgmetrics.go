// Package msgmetrics measures message consumers (Kafka and RabbitMQ alike): how
// long a message takes to handle, retries included, how often handlers are
// retried, and how many messages end in a dead-letter topic or queue.
package msgmetrics

import (
	"errors"

	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are one registry's consumer metrics; a nil *Metrics records nothing.
type Metrics struct {
	handled      *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
}

// For returns the consumer metrics of reg, registering them the first time;
// every consumer of a process shares them, told apart by labels. nil reg: nil.
func For(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		return nil
	}
	labels := []string{"system", "source"}
	return &Metrics{
		handled: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kshop_consumer_handle_seconds",
			Help:    "Time to handle one message, retries included, by system (kafka, rabbitmq), source (topic or queue) and outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, append(labels, "outcome"))),
		retries: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kshop_consumer_retries_total",
			Help: "Handler calls that failed and were tried again.",
		}, labels)),
		deadLettered: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kshop_consumer_dead_lettered_total",
			Help: "Messages sent to their dead-letter topic or queue.",
		}, labels)),
	}
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			return already.ExistingCollector.(C)
		}
		panic(err) // a metric definition conflict is a programming error
	}
	return c
}

// Observe records one message: its handling time, how many attempts it took,
// and whether it ended dead-lettered.
func (m *Metrics) Observe(system, source string, took time.Duration, attempts int, deadLettered bool) {
	if m == nil {
		return
	}
	// Every source has its series from its first message on, zero or not, so
	// rates and alerts work from the start.
	retries, dead := m.retries.WithLabelValues(system, source), m.deadLettered.WithLabelValues(system, source)
	retries.Add(0)
	dead.Add(0)
	outcome := "handled"
	if deadLettered {
		outcome = "dead_lettered"
		dead.Inc()
	}
	m.handled.WithLabelValues(system, source, outcome).Observe(took.Seconds())
	if attempts > 1 {
		retries.Add(float64(attempts - 1))
	}
}
