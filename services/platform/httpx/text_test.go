package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestQueryStringsThatCannotBeReadAreRefused(t *testing.T) {
	e := NewEngine(Options{Service: "test", Logger: quiet})
	e.GET("/search", func(c *gin.Context) { OK(c, c.Query("name")) })
	for _, c := range []struct {
		query  string
		status int
		field  string
	}{
		{"name=tea&page=2", http.StatusOK, ""},
		{"name=%E2%98%95", http.StatusOK, ""},
		{"", http.StatusOK, ""},
		{"limit=10;DROP%20TABLE%20products", http.StatusBadRequest, "query"},
		{"name=%zz", http.StatusBadRequest, "query"},
		{"name=tea%00", http.StatusBadRequest, "name"},
		{"name=%FF%FE", http.StatusBadRequest, "name"},
		{"page=1&name=ok&name=%00", http.StatusBadRequest, "name"},
		{"%00=1", http.StatusBadRequest, "query"},
		{"=%FF", http.StatusBadRequest, "query"},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/search?"+c.query, nil))
		if rec.Code != c.status {
			t.Errorf("?%s: got %d, want %d: %s", c.query, rec.Code, c.status, rec.Body)
			continue
		}
		if c.field == "" {
			continue
		}
		var body Response
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("?%s: %v: %s", c.query, err, rec.Body)
		}
		if body.Message != MsgValidation || len(body.Errors) != 1 || body.Errors[0].Field != c.field {
			t.Errorf("?%s: got %s, want one error for %q", c.query, rec.Body, c.field)
		}
	}
}

func TestTextWithNULIsFoundAtItsJSONPath(t *testing.T) {
	type line struct {
		Note *string `json:"note"`
	}
	type request struct {
		Name  string            `json:"name"`
		Lines []line            `json:"lines"`
		Tags  map[string]string `json:"tags"`
		Raw   json.RawMessage   `json:"raw"`
		Plain string
	}
	nul, clean := "a\x00b", "ab"
	for _, c := range []struct {
		req   request
		field string
		found bool
	}{
		{request{Name: clean, Lines: []line{{&clean}}, Raw: json.RawMessage("\"\x00\"")}, "", false},
		{request{Name: nul}, "name", true},
		{request{Lines: []line{{&clean}, {&nul}}}, "lines[1].note", true},
		{request{Tags: map[string]string{"colour": nul}}, "tags[colour]", true},
		{request{Tags: map[string]string{nul: clean}}, "tags", true},
		{request{Plain: nul}, "Plain", true},
	} {
		field, found := textWithNUL(reflect.ValueOf(&c.req), "")
		if field != c.field || found != c.found {
			t.Errorf("%+v: got %q %v, want %q %v", c.req, field, found, c.field, c.found)
		}
	}
}
