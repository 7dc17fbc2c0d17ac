package order

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the order service's own series, in one place as in the other
// services; the platform's (HTTP, pools, consumers, outbox, inbox) register
// themselves. The transitions (paid, completed, cancelled) are counted only
// after the transaction that made them committed.
type metrics struct {
	created   prometheus.Counter
	refused   *prometheus.CounterVec // by limit: a customer who keeps meeting them may be hoarding
	paid      prometheus.Counter
	completed prometheus.Counter
	cancelled *prometheus.CounterVec // by reason
	saga      *prometheus.CounterVec // saga and timer outcomes, by kind
}

func newMetrics(registry *prometheus.Registry) *metrics {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_orders_created_total", Help: "Orders created."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kshop_orders_refused_total", Help: "Orders refused by a customer's pending limit, by limit (orders, units).",
		}, []string{"limit"}),
		paid:      prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_orders_paid_total", Help: "Orders paid."}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{Name: "kshop_orders_completed_total", Help: "Paid orders completed at their expiry."}),
		cancelled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kshop_orders_cancelled_total", Help: "Orders cancelled, by reason (expired, out_of_stock, customer)."}, []string{"reason"}),
		saga: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kshop_order_saga_events_total",
			Help: "Saga and timer outcomes applied to orders, by kind.",
		}, []string{"kind"}),
	}
	if registry != nil {
		registry.MustRegister(m.saga, m.created, m.refused, m.paid, m.completed, m.cancelled)
	}
	// The refusals' and cancellations' series exist from the start, at zero.
	for _, limit := range []string{refusedOrders, refusedUnits} {
		m.refused.WithLabelValues(limit)
	}
	for _, reason := range []CancelReason{CancelExpired, CancelOutOfStock, CancelCustomer} {
		m.cancelled.WithLabelValues(string(reason))
	}
	return m
}

// The labels of kshop_orders_refused_total.
const (
	refusedOrders = "orders"
	refusedUnits  = "units"
)

// countRefused counts an order refused by a pending limit; other errors are
// not refusals.
func (m *metrics) countRefused(err error) {
	switch {
	case errors.Is(err, ErrTooManyPendingOrders):
		m.refused.WithLabelValues(refusedOrders).Inc()
	case errors.Is(err, ErrTooManyPendingUnits):
		m.refused.WithLabelValues(refusedUnits).Inc()
	}
}

func (m *metrics) countCancelled(reason CancelReason) {
	m.cancelled.WithLabelValues(string(reason)).Inc()
}
