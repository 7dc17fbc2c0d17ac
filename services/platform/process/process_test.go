package process

import (
	"os"
	"os/exec"
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
