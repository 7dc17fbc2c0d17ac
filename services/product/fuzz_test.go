package product

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kshop/kshop/services/platform/apitest"
)

// The product API's decoders, fed anything: they answer in the contract or
// hand the catalogue values within its limits, which PostgreSQL can store.
// Hostile seeds are committed under testdata/fuzz/<target>/.

func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func FuzzProductBody(f *testing.F) {
	f.Add([]byte(`{"name":"Tea","description":"Black tea","price":"4.50","quantity":10}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/products", bindFields)
	f.Fuzz(func(t *testing.T, body []byte) {
		p, ok := decoder.Decode(t, "/products", body)
		if !ok {
			return
		}
		if n := utf8.RuneCountInString(p.Name); n < 1 || n > maxNameChars || !storable(p.Name) {
			t.Fatalf("accepted name %q", p.Name)
		}
		if n := utf8.RuneCountInString(p.Description); n < 1 || n > maxDescriptionChars || !storable(p.Description) {
			t.Fatalf("accepted description %q", p.Description)
		}
		if !p.Price.IsPositive() || p.Price.GreaterThan(maxPrice) || !p.Price.Equal(p.Price.Round(2)) {
			t.Fatalf("accepted price %s", p.Price.Decimal)
		}
		if p.Quantity < 0 || p.Quantity > maxQuantity {
			t.Fatalf("accepted quantity %d", p.Quantity)
		}
	})
}

func FuzzSearchQuery(f *testing.F) {
	f.Add("name=tea&description=black&page=2&limit=5")
	decoder := apitest.NewDecoder(http.MethodGet, "/products", searchQuery)
	f.Fuzz(func(t *testing.T, query string) {
		q, ok := decoder.Decode(t, "/products?"+query, nil)
		if !ok {
			return
		}
		if utf8.RuneCountInString(q.Name) > maxNameChars || !storable(q.Name) ||
			utf8.RuneCountInString(q.Description) > maxDescriptionChars || !storable(q.Description) {
			t.Fatalf("accepted search text %q, %q", q.Name, q.Description)
		}
		if q.Page < 1 || q.Page > 1_000_000 || q.Limit < 1 || q.Limit > maxLimit {
			t.Fatalf("accepted page %d, limit %d", q.Page, q.Limit)
		}
	})
}

// FuzzIfMatch: a PUT is applied only at a version the client named. Every
// version read from If-Match is written in it as a strong tag, "<digits>", and
// a header with no tag but "*" or nothing is no precondition at all (the 428).
func FuzzIfMatch(f *testing.F) {
	for _, seed := range []string{`"7"`, `"7", "8"`, `W/"7"`, `*`, ``, ` , `, `"7`, `7"`, `"-7"`, `"+7"`, `"0x7"`, `"99999999999999999999"`, "\"7\"\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		versions, conditional := versionsOf([]string{header})
		tags := 0
		for _, tag := range strings.Split(header, ",") {
			if tag = strings.TrimSpace(tag); tag != "" && tag != "*" {
				tags++
			}
		}
		if conditional != (tags > 0) {
			t.Fatalf("%q: conditional %v with %d tags", header, conditional, tags)
		}
		if len(versions) > tags {
			t.Fatalf("%q: %d versions from %d tags", header, len(versions), tags)
		}
		for _, v := range versions {
			if v < 0 || !strings.Contains(header, `"`+strconv.FormatInt(v, 10)+`"`) {
				t.Fatalf("%q: version %d is not a strong tag of the header", header, v)
			}
		}
	})
}
