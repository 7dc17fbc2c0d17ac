package httpx_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/httpx"
)

// A request shaped like the services' own: nested items, text, numbers, tags.
type fuzzItem struct {
	ProductID int64 `json:"product_id" binding:"required,min=1"`
	Quantity  int64 `json:"quantity" binding:"required,min=1,max=1000"`
}

type fuzzRequest struct {
	RequestID   string     `json:"request_id" binding:"required,min=1,max=64"`
	Email       string     `json:"email" binding:"omitempty,email"`
	Description *string    `json:"description" binding:"omitempty,max=500"`
	Items       []fuzzItem `json:"items" binding:"required,min=1,max=50,dive"`
}

// FuzzBindJSON: whatever the body, BindJSON answers in the contract or
// returns a request that satisfies every binding tag and holds no NUL.
func FuzzBindJSON(f *testing.F) {
	f.Add([]byte(`{"request_id":"r-1","items":[{"product_id":1,"quantity":2}]}`))
	decoder := apitest.NewDecoder(http.MethodPost, "/orders", httpx.Bind[fuzzRequest])
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ok := decoder.Decode(t, "/orders", body)
		if !ok {
			return
		}
		if n := utf8.RuneCountInString(req.RequestID); n < 1 || n > 64 || strings.ContainsRune(req.RequestID, 0) {
			t.Fatalf("accepted request_id %q", req.RequestID)
		}
		if req.Description != nil && (utf8.RuneCountInString(*req.Description) > 500 || strings.ContainsRune(*req.Description, 0)) {
			t.Fatalf("accepted description %q", *req.Description)
		}
		if strings.ContainsRune(req.Email, 0) || (req.Email != "" && !strings.Contains(req.Email, "@")) {
			t.Fatalf("accepted email %q", req.Email)
		}
		if len(req.Items) < 1 || len(req.Items) > 50 {
			t.Fatalf("accepted %d items", len(req.Items))
		}
		for _, it := range req.Items {
			if it.ProductID < 1 || it.Quantity < 1 || it.Quantity > 1000 {
				t.Fatalf("accepted item %+v", it)
			}
		}
	})
}

// FuzzPathID: an id in a path is an int64 or a 400 naming what was sent.
func FuzzPathID(f *testing.F) {
	f.Add("42")
	decoder := apitest.NewDecoder(http.MethodGet, "/products/:id", func(c *gin.Context) (int64, bool) {
		return httpx.PathID(c, "id")
	})
	f.Fuzz(func(t *testing.T, raw string) {
		id, ok := decoder.Decode(t, "/products/"+url.PathEscape(raw), nil)
		if !ok {
			return
		}
		if parsed, err := strconv.ParseInt(raw, 10, 64); err != nil || parsed != id {
			t.Fatalf("accepted %q as %d", raw, id)
		}
	})
}
