package kubetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Stand-ins fill only the gaps: a dependency helm fetched (a .tgz) or one
// already unpacked is left as it is.
func TestStandInsFillOnlyMissingDependencies(t *testing.T) {
	chart := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(chart, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(chart, path), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Chart.yaml", `apiVersion: v2
name: shop
version: 0.1.0
dependencies:
  - {name: kafka, version: 1.2.3, repository: oci://example/charts}
  - {name: redis, version: 4.5.6, repository: oci://example/charts}
  - {name: mailpit, version: 0.1.0, repository: https://example/charts}
`)
	write("charts/kafka-1.2.3.tgz", "fetched")
	write("charts/redis/Chart.yaml", "apiVersion: v2\nname: redis\nversion: 4.5.6\n")
	if err := WriteStandIns(chart); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(chart, "charts", "kafka")); err == nil {
		t.Error("a stand-in was written beside the fetched kafka chart")
	}
	if data, _ := os.ReadFile(filepath.Join(chart, "charts", "redis", "Chart.yaml")); strings.Contains(string(data), StandInDescription) {
		t.Error("the unpacked redis chart was replaced")
	}
	data, err := os.ReadFile(filepath.Join(chart, "charts", "mailpit", "Chart.yaml"))
	if err != nil || !strings.Contains(string(data), "version: 0.1.0") || !strings.Contains(string(data), StandInDescription) {
		t.Fatalf("mailpit stand-in: %v\n%s", err, data)
	}
}
