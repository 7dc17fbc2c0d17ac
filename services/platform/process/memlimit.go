package process

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// goShareOfContainerMemory is how much of its container's memory limit a
// service lets the Go heap grow to before the garbage collector works harder.
// The rest is for what the Go runtime does not manage: the binary's own pages
// (35–50 MB for the Kafka services, which link librdkafka), librdkafka's C
// allocations and thread stacks (BenchmarkServiceProcesses measures both).
const goShareOfContainerMemory = 0.75

// cgroupMemoryMax is the container's memory limit under cgroup v2.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// FollowContainerMemory gives the Go runtime a soft memory limit of three
// quarters of the container's memory limit (see setMemoryLimit) and logs what
// it did. Start calls it; a binary that does not use Start (the controller)
// calls it itself.
func FollowContainerMemory(logger *slog.Logger) {
	if soft, err := setMemoryLimit(cgroupMemoryMax); err != nil {
		logger.Warn("no Go memory limit from the container's", "error", err)
	} else if soft > 0 {
		logger.Info("Go memory limit set from the container's", "gomemlimit_bytes", soft, "share", goShareOfContainerMemory)
	}
}

// setMemoryLimit gives the Go runtime a soft memory limit of
// goShareOfContainerMemory of the container's (read from memoryMax), unless
// GOMEMLIMIT already set one or the container has no limit. It returns the
// limit it set, 0 when it set none. GOMEMLIMIT equal to the container's whole
// limit would let the heap take the memory the rest needs, and the kernel
// would kill the container before the collector ever tried hard.
func setMemoryLimit(memoryMax string) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	raw, err := os.ReadFile(memoryMax)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // not in a cgroup v2 container: nothing to follow
	}
	if err != nil {
		return 0, fmt.Errorf("read the container's memory limit: %w", err)
	}
	value := strings.TrimSpace(string(raw))
	if value == "max" {
		return 0, nil
	}
	limit, err := strconv.ParseInt(value, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Errorf("the container's memory limit %s is %q, not a number of bytes", memoryMax, value)
	}
	soft := int64(math.Floor(float64(limit) * goShareOfContainerMemory))
	debug.SetMemoryLimit(soft)
	return soft, nil
}
