package tokens

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// KeyFile is a key set read from a JWKS file, typically a mounted Kubernetes
// Secret that the controller rotates. It re-reads the file at most once per
// interval, when asked for the keys; new content that does not parse is logged
// and ignored, so a half-written file never takes signing down. Polling rather
// than inotify because Secret volumes are updated by swapping a symlink, which
// file watches on the old path miss.
type KeyFile struct {
	path     string
	interval time.Duration
	logger   *slog.Logger

	mu        sync.Mutex
	set       KeySet
	raw       []byte
	checkedAt time.Time
}

// LoadKeyFile reads path; the first read must succeed.
func LoadKeyFile(path string, interval time.Duration, logger *slog.Logger) (*KeyFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS %s: %w", path, err)
	}
	set, err := ParseJWKS(raw)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", path, err)
	}
	return &KeyFile{path: path, interval: interval, logger: logger, set: set, raw: raw, checkedAt: time.Now()}, nil
}

// KeySet returns the keys, re-reading the file when the interval has passed.
func (f *KeyFile) KeySet() KeySet {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checkedAt) < f.interval {
		return f.set
	}
	f.checkedAt = time.Now()
	raw, err := os.ReadFile(f.path)
	if err != nil {
		f.logger.Error("re-read JWKS; keeping the keys loaded before", "path", f.path, "error", err)
		return f.set
	}
	if bytes.Equal(raw, f.raw) {
		return f.set
	}
	set, err := ParseJWKS(raw)
	if err != nil {
		f.logger.Error("JWKS changed but does not parse; keeping the keys loaded before", "path", f.path, "error", err)
		return f.set
	}
	f.set, f.raw = set, raw
	ids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		ids[i] = k.ID
	}
	f.logger.Info("JWKS reloaded", "path", f.path, "kids", ids)
	return f.set
}
