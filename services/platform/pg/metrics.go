package pg

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector exports the pools' statistics, read at scrape time.
type poolCollector struct {
	db                                                            *DB
	acquired, idle, total, max, acquires, emptyAcquires, canceled *prometheus.Desc
	acquireSeconds                                                *prometheus.Desc
	replicaUp, replicaLag, reads                                  *prometheus.Desc
}

// NewPoolCollector returns a Prometheus collector of db's pool statistics,
// labelled pool="primary" or "replica": connections in use, idle and in all,
// the maximum, acquisitions, acquisitions that had to wait for a free
// connection, and the time spent acquiring. With a replica, also whether it
// answers, how far behind the primary it is, and where reads went and why.
func NewPoolCollector(db *DB) prometheus.Collector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("kshop_db_pool_"+name, help, []string{"pool"}, nil)
	}
	return &poolCollector{
		db:             db,
		acquired:       desc("acquired_connections", "Connections in use."),
		idle:           desc("idle_connections", "Idle connections."),
		total:          desc("total_connections", "Open connections."),
		max:            desc("max_connections", "The pool's maximum size."),
		acquires:       desc("acquires_total", "Connections handed out."),
		emptyAcquires:  desc("empty_acquires_total", "Acquisitions that found no idle connection."),
		canceled:       desc("canceled_acquires_total", "Acquisitions given up because the context ended."),
		acquireSeconds: desc("acquire_seconds_total", "Time spent acquiring connections."),
		replicaUp:      prometheus.NewDesc("kshop_db_replica_up", "1 when the last check reached the read replica, else 0 (reads go to the primary).", nil, nil),
		replicaLag: prometheus.NewDesc("kshop_db_replica_lag_seconds",
			"How old the read replica's data is at most, by the last check (while it answers).", nil, nil),
		reads: prometheus.NewDesc("kshop_db_reads_total", "Reads that tolerate staleness or must be fresh, by the pool that served them and why.", []string{"pool", "reason"}, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.emptyAcquires, c.canceled, c.acquireSeconds, c.replicaUp, c.replicaLag, c.reads} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	pools := map[string]*pgxpool.Pool{"primary": c.db.Primary}
	if c.db.Replica != c.db.Primary {
		pools["replica"] = c.db.Replica
	}
	for name, pool := range pools {
		s := pool.Stat()
		ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()), name)
		ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns()), name)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()), name)
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()), name)
		ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(c.emptyAcquires, prometheus.CounterValue, float64(s.EmptyAcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(c.canceled, prometheus.CounterValue, float64(s.CanceledAcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(c.acquireSeconds, prometheus.CounterValue, s.AcquireDuration().Seconds(), name)
	}
	for i, reason := range readReasons {
		pool := "primary"
		if reason == ReadReplica {
			pool = "replica"
		}
		withReplica := c.db.replication != nil
		if withReplica && reason == ReadNoReplica || !withReplica && reason != ReadNoReplica && reason != ReadFresh {
			continue // a series that cannot move under this configuration
		}
		ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(c.db.reads.n[i].Load()), pool, reason)
	}
	if state := c.db.ReplicaState(); state.Configured {
		up := 0.0
		if state.Up {
			up = 1
			ch <- prometheus.MustNewConstMetric(c.replicaLag, prometheus.GaugeValue, state.Lag.Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.replicaUp, prometheus.GaugeValue, up)
	}
}
