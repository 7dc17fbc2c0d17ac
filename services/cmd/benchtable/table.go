package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Row is one line of the table: what is measured, kshop's figure, and what it
// compares with (the other path, or the ceiling on this machine).
type Row struct {
	Measure, Figure, Comparison string
}

// WriteTable prints the rows as a Markdown table.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| Measure | kshop | Comparison / ceiling |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", cell(r.Measure), cell(r.Figure), cell(r.Comparison))
	}
}

func cell(s string) string {
	if s == "" {
		return "–"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

// metric formats one measured value for a reader: thousands separated by a
// thin space, three significant digits below 100; a missing value says so.
func metric(results Results, benchmark, unit string) string {
	value, ok := results[benchmark][unit]
	if !ok {
		return "not measured"
	}
	return Number(value)
}

// Number writes 14536 as "14 536", 19.84 as "19.8", 0.2549 as "0.255".
func Number(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case math.Abs(v) >= 100:
		digits := fmt.Sprintf("%.0f", math.Abs(v))
		var out []byte
		for i := range len(digits) {
			if i > 0 && (len(digits)-i)%3 == 0 {
				out = append(out, ' ')
			}
			out = append(out, digits[i])
		}
		if v < 0 {
			return "-" + string(out)
		}
		return string(out)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case v == 0:
		return "0"
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
