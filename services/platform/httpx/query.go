package httpx

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// strictQuery refuses a query string that does not parse, or whose keys or
// values hold text PostgreSQL cannot store (NUL, invalid UTF-8), before any
// handler sees it. Go's own parsing silently drops what it cannot read
// ("limit=10;DROP" loses the limit), so a client would get an answer to a
// question it did not ask; and a NUL that reached a query would be a 500.
func strictQuery() gin.HandlerFunc {
	return func(c *gin.Context) {
		raw := c.Request.URL.RawQuery
		if raw == "" {
			c.Next()
			return
		}
		values, err := url.ParseQuery(raw)
		if err != nil {
			Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: "query", Message: "must be a valid query string: name=value pairs joined by &, percent-encoded"})
			c.Abort()
			return
		}
		var problems []FieldError
		for _, name := range slices.Sorted(maps.Keys(values)) {
			switch {
			case !storableText(name):
				// The name itself cannot be echoed back as a field name.
				problems = append(problems, FieldError{Field: "query", Message: "parameter names must be UTF-8 text without NUL characters"})
			case slices.ContainsFunc(values[name], unstorableText):
				field := name
				if field == "" { // "?=%FF"
					field = "query"
				}
				problems = append(problems, FieldError{Field: field, Message: "must be UTF-8 text without NUL characters"})
			}
		}
		if len(problems) > 0 {
			Fail(c, http.StatusBadRequest, MsgValidation, problems...)
			c.Abort()
			return
		}
		c.Next()
	}
}

// storableText reports whether s can be a PostgreSQL text value.
func storableText(s string) bool { return utf8.ValidString(s) && !strings.Contains(s, "\x00") }

func unstorableText(s string) bool { return !storableText(s) }
