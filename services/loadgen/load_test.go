package loadgen

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTheSummaryLineCarriesEveryCount(t *testing.T) {
	r := Report{Elapsed: 2 * time.Second, Dropped: 3, Ops: map[string]*OpStats{
		OpBrowse: {Requests: 4, OK: 2, ByStatus: map[int]int{502: 1}, Failures: 1,
			Latencies: []time.Duration{4 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}},
		OpPay: {ByStatus: map[int]int{}},
	}}
	var out bytes.Buffer
	if err := r.PrintJSON(&out); err != nil {
		t.Fatal(err)
	}
	line, found := strings.CutPrefix(out.String(), SummaryPrefix)
	if !found || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("not one summary line: %q", out.String())
	}
	var s Summary
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatal(err)
	}
	browse, ok := s.Ops[OpBrowse]
	if !ok || len(s.Ops) != 1 {
		t.Fatalf("ops %v: want browse only (pay sent nothing)", s.Ops)
	}
	if browse.Requests != 4 || browse.OK != 2 || browse.ByStatus["502"] != 1 || browse.NoAnswer != 1 || s.Dropped != 3 || s.ElapsedSeconds != 2 {
		t.Errorf("summary %+v, browse %+v", s, browse)
	}
	if browse.P50Ms != 3 || browse.MaxMs != 4 {
		t.Errorf("p50 %v ms, max %v ms; want 3 and 4", browse.P50Ms, browse.MaxMs)
	}
}
