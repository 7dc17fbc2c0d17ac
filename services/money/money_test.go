package money

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMoneyIsExact(t *testing.T) {
	var a, b Money
	if err := json.Unmarshal([]byte(`0.1`), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`"0.2"`), &b); err != nil {
		t.Fatal(err)
	}
	sum := Money{a.Add(b.Decimal)}
	if !sum.Equal(MustParse("0.3").Decimal) {
		t.Fatalf("0.1 + 0.2 = %s", sum)
	}
	out, _ := json.Marshal(MustParse("25000"))
	if string(out) != `"25000.00"` {
		t.Fatalf("25000 marshals to %s, want \"25000.00\"", out)
	}
	big := MustParse("99999999.99")
	out, _ = json.Marshal(big)
	if string(out) != `"99999999.99"` {
		t.Fatalf("99999999.99 marshals to %s", out)
	}
	for _, bad := range []string{`"abc"`, `null`, `true`, `{}`, `[]`, `"1e"`, `""`,
		// Amounts too large to compute with: each would hold a CPU for minutes.
		`"1e2000000000"`, `1e-2000000000`, `"-1e30"`, `"1e-31"`, `"` + strings.Repeat("9", 31) + `"`, `"9999999999e30"`} {
		var m Money
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("Money accepted %.50s", bad)
		}
	}
}

func TestMoneyAcceptsAmountsAtItsBounds(t *testing.T) {
	for _, ok := range []string{`"1e29"`, `"1e-30"`, `"-12.50"`, `"` + strings.Repeat("9", 30) + `.` + strings.Repeat("9", 30) + `"`, `"0.` + strings.Repeat("0", 29) + `1"`, `"0"`} {
		var m Money
		if err := json.Unmarshal([]byte(ok), &m); err != nil {
			t.Errorf("Money refused %s: %v", ok, err)
		}
	}
}
