package process

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/telemetry"
)

func TestSignalEndsTheContext(t *testing.T) {
	p := Start("test", "KSHOP_TEST", logx.Config{Level: "warn"}, telemetry.Config{SampleRatio: 1})
	defer p.Close()
	if p.Telemetry.Registry == nil {
		t.Fatal("no metrics registry")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Context.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the process context")
	}
}

func TestBadLogLevelEndsTheProcessNamingTheVariable(t *testing.T) {
	if os.Getenv("KSHOP_PROCESS_CHILD") == "1" {
		Start("test", "KSHOP_TEST", logx.Config{Level: "loud"}, telemetry.Config{})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadLogLevelEndsTheProcessNamingTheVariable$")
	cmd.Env = append(os.Environ(), "KSHOP_PROCESS_CHILD=1")
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 2 || !strings.Contains(string(out), "KSHOP_TEST_LOG_LEVEL") {
		t.Fatalf("child ended with %v:\n%s", err, out)
	}
}

// In a container with a memory limit the Go heap gets three quarters of it;
// GOMEMLIMIT set by hand wins; no limit, or no cgroup file, sets none; a file
// that is not a number of bytes is an error, not a guess.
func TestTheGoMemoryLimitFollowsTheContainers(t *testing.T) {
	restore := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(restore) })
	file := func(content string) string {
		path := filepath.Join(t.TempDir(), "memory.max")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Setenv("GOMEMLIMIT", "")
	soft, err := setMemoryLimit(file("268435456\n"))
	if err != nil || soft != 201326592 || debug.SetMemoryLimit(-1) != 201326592 {
		t.Fatalf("256 MiB container: limit %d, %v; runtime %d; want 192 MiB", soft, err, debug.SetMemoryLimit(-1))
	}
	for name, path := range map[string]string{"no limit": file("max\n"), "no cgroup v2": filepath.Join(t.TempDir(), "absent")} {
		if soft, err := setMemoryLimit(path); soft != 0 || err != nil {
			t.Errorf("%s: limit %d, %v; want none", name, soft, err)
		}
	}
	if _, err := setMemoryLimit(file("lots")); err == nil || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("a limit of \"lots\": %v, want an error quoting it", err)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	if soft, err := setMemoryLimit(file("268435456")); soft != 0 || err != nil {
		t.Errorf("with GOMEMLIMIT set: limit %d, %v; want it left alone", soft, err)
	}
}
