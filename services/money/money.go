// Package money is kshop's exact decimal amount: prices and order totals in
// the API, the database and the messages, never through a float.
package money

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/shopspring/decimal"
)

// Money is an exact decimal amount. It travels as a JSON string with two decimals
// ("25000.00") and is read from a string or a number, never through a float.
// Whether an amount is a valid price (positive, at most two decimals, a maximum)
// is the product service's rule, not the wire format's.
type Money struct{ decimal.Decimal }

// MustParse parses s or panics; for literals in code and tests.
func MustParse(s string) Money { return Money{decimal.RequireFromString(s)} }

// An amount's size is bounded before anyone computes with it: "1e2000000000"
// is a valid decimal, and comparing or rounding it makes the decimal library
// build a number of two billion digits, which holds a CPU for minutes. The
// bounds are far beyond any price, and what they admit still parses after
// being written with two decimals.
const (
	maxAmountDecimals      = 30
	maxAmountIntegerDigits = 30
)

// Parse parses a decimal string below 10^30 in magnitude with at most 30
// decimals.
func Parse(s string) (Money, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Money{}, fmt.Errorf("%.40q is not a decimal amount", s)
	}
	if d.Exponent() < -maxAmountDecimals {
		return Money{}, fmt.Errorf("%.40q: an amount has at most %d decimals", s, maxAmountDecimals)
	}
	coefficient := d.Coefficient()
	if integerDigits := int64(len(coefficient.Abs(coefficient).Text(10))) + int64(d.Exponent()); integerDigits > maxAmountIntegerDigits {
		return Money{}, fmt.Errorf("%.40q: an amount is below 10^%d", s, maxAmountIntegerDigits)
	}
	return Money{d}, nil
}

// String is the amount with two decimals.
func (m Money) String() string { return m.StringFixed(2) }

// MarshalJSON writes "123.45".
func (m Money) MarshalJSON() ([]byte, error) { return json.Marshal(m.StringFixed(2)) }

// UnmarshalJSON reads "123.45" or 123.45 exactly.
func (m *Money) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return fmt.Errorf("amount must be a decimal string or number, got %s", data)
	}
	text := string(data)
	if data[0] == '"' {
		if err := json.Unmarshal(data, &text); err != nil {
			return fmt.Errorf("amount: %w", err)
		}
	} else if data[0] != '-' && (data[0] < '0' || data[0] > '9') {
		return fmt.Errorf("amount must be a decimal string or number, got %s", data)
	}
	parsed, err := Parse(text)
	if err != nil {
		return err
	}
	*m = parsed
	return nil
}
