package main

import (
	"bytes"
	"strings"
	"testing"
)

const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/kshop/kshop/services/gateway
cpu: AMD EPYC
BenchmarkGatewayVsDirect/upstream=0s-2         	    5000	    338783 ns/op	        10.14 direct-p99-ms	     14536 direct-req/s	         0.2549 ratio
    bench_test.go:12: BenchmarkBareGin took a while
BenchmarkBareGin-2                             	    5000	     35366 ns/op	         4.808 p99-ms	     28315 req/s
BenchmarkGetProduct-16   	    3000	    204885 ns/op	   19891 B/op	     178 allocs/op
PASS
ok  	github.com/kshop/kshop/services/gateway	8.069s
`

func TestParseBenchOutputKeepsEveryMetricByNameWithoutTheCPUSuffix(t *testing.T) {
	results := Results{}
	if err := ParseBenchOutput(strings.NewReader(goTestOutput), results); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, unit string
		want       float64
	}{
		{"BenchmarkGatewayVsDirect/upstream=0s", "direct-req/s", 14536},
		{"BenchmarkGatewayVsDirect/upstream=0s", "ratio", 0.2549},
		{"BenchmarkGatewayVsDirect/upstream=0s", "runs", 5000},
		{"BenchmarkBareGin", "p99-ms", 4.808},
		{"BenchmarkGetProduct", "allocs/op", 178},
	} {
		if got, ok := results[c.name][c.unit]; !ok || got != c.want {
			t.Errorf("%s %s = %v (present %v), want %v", c.name, c.unit, got, ok, c.want)
		}
	}
	if len(results) != 3 {
		t.Errorf("%d benchmarks parsed, want 3: %v", len(results), results)
	}
}

func TestParseBenchOutputRefusesAValueThatIsNotANumber(t *testing.T) {
	err := ParseBenchOutput(strings.NewReader("BenchmarkX-2 10 fast req/s\n"), Results{})
	if err == nil || !strings.Contains(err.Error(), `"fast" is not a number`) {
		t.Fatalf("error %v, want one naming the bad value", err)
	}
}

func TestParsePgbenchTPS(t *testing.T) {
	output := `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: update.sql
number of clients: 8
latency average = 1.112 ms
initial connection time = 21.577 ms
tps = 7193.046126 (without initial connection time)
`
	tps, latency, err := ParsePgbenchTPS(output)
	if err != nil || tps != 7193.046126 || latency != 1.112 {
		t.Fatalf("tps %v, latency %v, err %v", tps, latency, err)
	}
	if _, _, err := ParsePgbenchTPS("pgbench: error: connection refused"); err == nil {
		t.Fatal("no error for output without a tps line")
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{
		14536: "14 536", 1234567: "1 234 567", 100: "100", 19.84: "19.8", 4.808: "4.81", 0.2549: "0.255", 0: "0", -2500: "-2 500",
	} {
		if got := Number(v); got != want {
			t.Errorf("Number(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWriteTableEscapesPipesAndMarksEmptyCells(t *testing.T) {
	var out bytes.Buffer
	WriteTable(&out, []Row{{Measure: "a|b", Figure: "1"}})
	want := "| Measure | kshop | Comparison / ceiling |\n|---|---|---|\n| a\\|b | 1 | – |\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRowsSayWhatWasNotMeasured(t *testing.T) {
	table := rows(Results{bareGin: {"req/s": 28315, "p99-ms": 4.808}}, nil)
	if len(table) != 17 {
		t.Fatalf("%d rows, want 17 (3 gateway, product, placement, orders through the gateway, orderable, saga, timers, 5 processes, all-in-one, 2 ceilings)", len(table))
	}
	last := table[len(table)-1]
	if !strings.Contains(last.Figure, "not measured") {
		t.Errorf("pgbench row without a pgbench result: %q", last.Figure)
	}
	if got := table[3].Comparison; got != "ceiling, bare gin: 28 315 req/s, p99 4.81 ms" {
		t.Errorf("product row's ceiling: %q", got)
	}
	if !strings.Contains(table[4].Figure, "units oversold: not measured") {
		t.Errorf("placement row without results: %q", table[3].Figure)
	}
}

func TestWithDatabaseSwapsOnlyTheDatabase(t *testing.T) {
	got, err := withDatabase("postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable", "scratch")
	if err != nil || got != "postgres://postgres@127.0.0.1:15432/scratch?sslmode=disable" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := withDatabase("127.0.0.1:15432", "scratch"); err == nil {
		t.Fatal("no error for a URL without a scheme")
	}
}

func TestGibibytes(t *testing.T) {
	if got := gibibytes("24684084 kB"); got != "23.5 GiB" {
		t.Errorf("got %q", got)
	}
	if got := gibibytes("unknown"); got != "unknown" {
		t.Errorf("got %q", got)
	}
}
