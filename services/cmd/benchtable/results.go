package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Results are the metrics of every benchmark run, by benchmark name (without
// the -GOMAXPROCS suffix) and unit, as `go test -bench` printed them.
type Results map[string]map[string]float64

// procsSuffix is the "-2" go test appends to a benchmark's name on 2 cores.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// ParseBenchOutput reads go test's standard output and keeps every benchmark
// line: "BenchmarkX/sub-2  <N>  <value> <unit>  <value> <unit> ...". The
// iteration count is kept under the unit "runs".
func ParseBenchOutput(r io.Reader, into Results) error {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 2 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		runs, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			continue // a log line that starts with a benchmark's name
		}
		if len(fields)%2 != 0 {
			return fmt.Errorf("benchmark line %q: values and units do not pair up", scanner.Text())
		}
		name := procsSuffix.ReplaceAllString(fields[0], "")
		metrics := map[string]float64{"runs": runs}
		for i := 2; i < len(fields); i += 2 {
			value, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return fmt.Errorf("benchmark line %q: %q is not a number", scanner.Text(), fields[i])
			}
			metrics[fields[i+1]] = value
		}
		into[name] = metrics
	}
	return scanner.Err()
}

// ParsePgbenchTPS finds pgbench's "tps = 1234.56 (without initial connection
// time)" line and its "latency average = 1.234 ms".
func ParsePgbenchTPS(output string) (tps, latencyMs float64, err error) {
	tpsLine := regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`).FindStringSubmatch(output)
	if tpsLine == nil {
		return 0, 0, fmt.Errorf("no tps line in pgbench's output:\n%s", output)
	}
	tps, err = strconv.ParseFloat(tpsLine[1], 64)
	if err != nil {
		return 0, 0, err
	}
	if latency := regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`).FindStringSubmatch(output); latency != nil {
		latencyMs, _ = strconv.ParseFloat(latency[1], 64)
	}
	return tps, latencyMs, nil
}
