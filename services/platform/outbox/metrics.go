package outbox

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// relayMetrics are the numbers an operator watches to know the outbox keeps up:
// a growing backlog or oldest age means a broker is unreachable or too slow.
type relayMetrics struct {
	unsent      prometheus.Gauge
	oldestAge   prometheus.Gauge
	confirmed   prometheus.Counter
	publishFail *prometheus.CounterVec
}

func newRelayMetrics(reg prometheus.Registerer) *relayMetrics {
	if reg == nil {
		return nil
	}
	m := &relayMetrics{
		unsent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_unsent_rows", Help: "Outbox rows waiting to be published.",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_oldest_unsent_age_seconds", Help: "Age of the oldest unsent outbox row (0 when none).",
		}),
		confirmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_published_total", Help: "Outbox rows published and confirmed by a broker.",
		}),
		publishFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outbox_publish_failures_total", Help: "Outbox messages a broker did not confirm; they are retried.",
		}, []string{"destination"}),
	}
	for _, c := range []prometheus.Collector{m.unsent, m.oldestAge, m.confirmed, m.publishFail} {
		if err := reg.Register(c); err != nil {
			// Several relays in one process (the all-in-one binary) share the collectors.
			if already, ok := err.(prometheus.AlreadyRegisteredError); ok {
				m.adopt(c, already.ExistingCollector)
				continue
			}
		}
	}
	// Both destinations' failure series exist from the start, at zero.
	m.publishFail.WithLabelValues(string(Kafka))
	m.publishFail.WithLabelValues(string(AMQP))
	return m
}

// adopt switches m to a collector someone registered before, so counts add up.
func (m *relayMetrics) adopt(mine, existing prometheus.Collector) {
	switch mine {
	case m.unsent:
		m.unsent = existing.(prometheus.Gauge)
	case m.oldestAge:
		m.oldestAge = existing.(prometheus.Gauge)
	case m.confirmed:
		m.confirmed = existing.(prometheus.Counter)
	case m.publishFail:
		m.publishFail = existing.(*prometheus.CounterVec)
	}
}

func (m *relayMetrics) addConfirmed(n int) {
	if m != nil && n > 0 {
		m.confirmed.Add(float64(n))
	}
}

func (m *relayMetrics) addFailure(d Destination) {
	if m != nil {
		m.publishFail.WithLabelValues(string(d)).Inc()
	}
}

func (m *relayMetrics) setBacklog(unsent int64, oldest time.Duration) {
	if m != nil {
		m.unsent.Set(float64(unsent))
		m.oldestAge.Set(oldest.Seconds())
	}
}
