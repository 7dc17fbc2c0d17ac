package kafka

import (
	"context"
	"log/slog"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// librdkafka writes its own log lines to stderr unless asked to hand them over;
// clients set go.logs.channel.enable and forward them here, so they become JSON
// log lines like the rest and do not interleave with test or benchmark output.
func forwardLogs(events chan ckafka.LogEvent, logger *slog.Logger) {
	for ev := range events { // closed when the client closes
		level := slog.LevelDebug // syslog levels 5-7: notices and chatter
		switch {
		case ev.Level <= 3:
			level = slog.LevelError
		case ev.Level == 4:
			level = slog.LevelWarn
		}
		logger.Log(context.Background(), level, ev.Message, "librdkafka", ev.Tag, "client", ev.Name)
	}
}
