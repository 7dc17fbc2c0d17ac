package inbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Pruner deletes, on a schedule, the claims older than Retention: the inbox
// only has to remember an event as long as a broker may deliver it again.
// Without it the table grows by one row per event for ever.
type Pruner struct {
	Pool *pgxpool.Pool
	// Retention must exceed the longest redelivery: a claim forgotten before
	// its event's last redelivery lets that redelivery take effect twice.
	// Default 7 days.
	Retention time.Duration
	// Every is the pause between prunes (default 10 minutes).
	Every time.Duration
	// Registerer receives inbox_pruned_rows_total; nil: no metric.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Run prunes at once and then every Every until ctx ends. A failed prune is
// logged and tried again at the next turn; Run returns nil when ctx ends.
func (p *Pruner) Run(ctx context.Context) error {
	retention, every := p.Retention, p.Every
	if retention <= 0 {
		retention = 7 * 24 * time.Hour
	}
	if every <= 0 {
		every = 10 * time.Minute
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.Default()
	}
	pruned := prunedRows(p.Registerer)
	for {
		n, err := Prune(ctx, p.Pool, retention)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			logger.WarnContext(ctx, "prune the inbox; trying again later", "error", err, "next", every.String())
		default:
			pruned.Add(float64(n))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// prunedRows is the counter of pruned claims, shared by the services of one
// process (the all-in-one binary registers it once per service).
func prunedRows(reg prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inbox_pruned_rows_total", Help: "Inbox claims deleted after the retention (KSHOP_<SERVICE>_INBOX_RETENTION).",
	})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		if already, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return already.ExistingCollector.(prometheus.Counter)
		}
	}
	return c
}
