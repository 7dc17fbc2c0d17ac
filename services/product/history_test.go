package product_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/product"
)

type fieldChange struct {
	From json.RawMessage `json:"from"`
	To   json.RawMessage `json:"to"`
}

type historyJSON struct {
	ID        int64                  `json:"id"`
	ProductID int64                  `json:"product_id"`
	Version   int64                  `json:"version"`
	Kind      string                 `json:"kind"`
	Changes   map[string]fieldChange `json:"changes"`
	Units     *int64                 `json:"units"`
	OrderID   *int64                 `json:"order_id"`
	UserID    *int64                 `json:"user_id"`
	At        time.Time              `json:"at"`
}

// history reads a product's whole history through the API, page by page, and
// returns it oldest first, checking the pages are newest first and add up.
func (s *service) history(t testing.TB, id int64) []historyJSON {
	t.Helper()
	var all []historyJSON
	for page := 1; ; page++ {
		r := s.Do(t, &admin, http.MethodGet, fmt.Sprintf("/products/%d/history?limit=25&page=%d", id, page), nil).Expect(t, http.StatusOK, "")
		var list []historyJSON
		r.Decode(t, &list)
		all = append(all, list...)
		if len(list) < 25 {
			if r.Body.Paging == nil || r.Body.Paging.TotalItem != len(all) {
				t.Fatalf("read %d entries; paging says %+v", len(all), r.Body.Paging)
			}
			break
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("history not newest first: entry %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

// replayed is a product rebuilt from its history alone.
type replayed struct {
	Name, Description, Price string
	Quantity, Version        int64
	Deleted                  bool
}

// replay rebuilds a product from its history (oldest first), checking on the
// way that every change starts where the one before left it.
func replay(t testing.TB, entries []historyJSON) replayed {
	t.Helper()
	var p replayed
	fields := map[string]any{"name": &p.Name, "description": &p.Description, "price": &p.Price, "quantity": &p.Quantity, "deleted": &p.Deleted}
	for i, e := range entries {
		switch {
		case i == 0 && e.Kind != product.HistoryCreated && e.Kind != product.HistoryRecorded:
			t.Fatalf("history starts with %q", e.Kind)
		case i > 0 && e.Version != p.Version && e.Version != p.Version+1:
			t.Fatalf("entry %d (%s) at version %d after version %d: a change is missing", e.ID, e.Kind, e.Version, p.Version)
		case e.Kind == product.HistorySold && e.Version != p.Version:
			t.Fatalf("sale %d at version %d, but the product is at %d: a sale changes nothing of it", e.ID, e.Version, p.Version)
		}
		p.Version = e.Version
		switch e.Kind {
		case product.HistoryReserved, product.HistoryReleased:
			if e.OrderID == nil || e.UserID != nil || len(e.Changes) != 1 || e.Units == nil {
				t.Fatalf("stock movement %+v: want an order, its units and only the quantity", e)
			}
		case product.HistorySold:
			if e.OrderID == nil || e.UserID != nil || len(e.Changes) != 0 || e.Units == nil || *e.Units <= 0 {
				t.Fatalf("sale %+v: want an order, its units and no change", e)
			}
		default:
			if e.UserID == nil || *e.UserID != admin.ID || e.OrderID != nil {
				t.Fatalf("admin change %+v: want the admin's id", e)
			}
		}
		for field, change := range e.Changes {
			dst, known := fields[field]
			if !known {
				t.Fatalf("entry %d changes unknown field %q", e.ID, field)
			}
			if i > 0 {
				now, _ := json.Marshal(dst)
				if string(now) != string(change.From) {
					t.Fatalf("entry %d (%s) changes %s from %s, but replay has %s", e.ID, e.Kind, field, change.From, now)
				}
			}
			if err := json.Unmarshal(change.To, dst); err != nil {
				t.Fatalf("entry %d: %s to %s: %v", e.ID, field, change.To, err)
			}
		}
		var from, to int64
		if q, ok := e.Changes["quantity"]; ok && e.Kind != product.HistoryCreated && e.Kind != product.HistoryRecorded {
			_ = json.Unmarshal(q.From, &from)
			_ = json.Unmarshal(q.To, &to)
		}
		switch {
		case e.Kind == product.HistoryReserved && (to >= from || *e.Units != from-to),
			e.Kind == product.HistoryReleased && (to <= from || *e.Units != to-from),
			e.Kind == product.HistoryAdjusted && (e.Units == nil || *e.Units != to-from):
			t.Fatalf("%s of %v units moved stock from %d to %d", e.Kind, e.Units, from, to)
		}
	}
	return p
}

func (s *service) row(t testing.TB, id int64) replayed {
	t.Helper()
	var p replayed
	if err := s.db.QueryRow(context.Background(), `SELECT name, description, price::text, quantity, version, deleted_at IS NOT NULL FROM products WHERE id = $1`, id).
		Scan(&p.Name, &p.Description, &p.Price, &p.Quantity, &p.Version, &p.Deleted); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHistoryIsForAdminsNewestFirstAndPaged(t *testing.T) {
	s := newService(t)
	p := s.create(t, "Kopi", "25000", 10)
	path := fmt.Sprintf("/products/%d", p.ID)
	s.replace(t, &admin, path, `"1"`, map[string]any{"name": "Kopi Luwak", "description": "about Kopi", "price": "25000", "quantity": 12}).Expect(t, http.StatusOK, "")
	ctx := context.Background()
	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(31, item(p.ID, 5))); err != nil {
		t.Fatal(err)
	}
	if err := s.app.Stock.Release(ctx, uuid.NewString(), events.OrderCancelled{OrderID: 31, CustomerID: 9, Reason: events.CancelCustomer}); err != nil {
		t.Fatal(err)
	}
	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(32, item(p.ID, 2))); err != nil {
		t.Fatal(err)
	}
	paid := events.OrderPaid{OrderID: 32, CustomerID: 9, PaidAt: time.Now()}
	for range 2 { // a redelivery under another event id sells nothing twice
		if err := s.app.Stock.Sell(ctx, uuid.NewString(), paid); err != nil {
			t.Fatal(err)
		}
	}
	s.Do(t, &admin, http.MethodDelete, path, nil).Expect(t, http.StatusOK, "")

	s.Do(t, nobody, http.MethodGet, path+"/history", nil).Expect(t, http.StatusUnauthorized, "unauthorized")
	s.Do(t, &customer, http.MethodGet, path+"/history", nil).Expect(t, http.StatusForbidden, "forbidden")
	s.Do(t, &admin, http.MethodGet, "/products/424242/history", nil).Expect(t, http.StatusNotFound, "product not found")
	s.Do(t, &admin, http.MethodGet, "/products/abc/history", nil).Expect(t, http.StatusBadRequest, "")
	if r := s.Do(t, &admin, http.MethodGet, path+"/history?limit=26", nil).Expect(t, http.StatusBadRequest, ""); r.FirstError() != "limit" {
		t.Fatalf("400 names %q, want limit", r.FirstError())
	}

	// A deleted product keeps its history.
	entries := s.history(t, p.ID)
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, fmt.Sprintf("%s@%d", e.Kind, e.Version))
	}
	if fmt.Sprint(kinds) != "[created@1 updated@2 adjusted@2 reserved@3 released@4 reserved@5 sold@5 deleted@6]" {
		t.Fatalf("history %v", kinds)
	}
	updated, adjusted, reserved, sold := entries[1], entries[2], entries[3], entries[6]
	if len(updated.Changes) != 1 || string(updated.Changes["name"].From) != `"Kopi"` || string(updated.Changes["name"].To) != `"Kopi Luwak"` {
		t.Fatalf("updated %+v: want only the name, before and after", updated.Changes)
	}
	if string(adjusted.Changes["quantity"].From) != "10" || string(adjusted.Changes["quantity"].To) != "12" {
		t.Fatalf("adjusted %+v", adjusted.Changes)
	}
	if reserved.OrderID == nil || *reserved.OrderID != 31 || string(reserved.Changes["quantity"].To) != "7" || *reserved.Units != 5 {
		t.Fatalf("reserved %+v", reserved)
	}
	if *sold.OrderID != 32 || *sold.Units != 2 || len(sold.Changes) != 0 {
		t.Fatalf("sold %+v", sold)
	}
	if got, want := replay(t, entries), s.row(t, p.ID); got != want {
		t.Fatalf("replayed %+v, row %+v", got, want)
	}

	r := s.Do(t, &admin, http.MethodGet, path+"/history?limit=2&page=2", nil).Expect(t, http.StatusOK, "")
	var page []historyJSON
	r.Decode(t, &page)
	if len(page) != 2 || page[0].Kind != "reserved" || page[1].Kind != "released" ||
		r.Body.Paging.TotalItem != 8 || r.Body.Paging.TotalPage != 4 {
		t.Fatalf("page 2 of 2: %+v, paging %+v", page, r.Body.Paging)
	}
	r = s.Do(t, &admin, http.MethodGet, path+"/history?page=9", nil).Expect(t, http.StatusOK, "")
	if r.Body.Paging.TotalItem != 8 || string(r.Body.Data) != "[]" {
		t.Fatalf("a page past the end: %s, %+v", r.Body.Data, r.Body.Paging)
	}
}

// TestHistoryReplaysToTheRowAfterConcurrentOrdersCancellationsAndEdits is the
// property: whatever mix of orders, cancellations, admin replaces and a
// delete runs at once, each product's history, replayed from its creation,
// arrives at its row, stock and version included, and records every order's
// reservation and release.
func TestHistoryReplaysToTheRowAfterConcurrentOrdersCancellationsAndEdits(t *testing.T) {
	s := newService(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	var ids []int64
	for i := range 3 {
		ids = append(ids, s.create(t, fmt.Sprint("contended ", i), "10.50", 40).ID)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(c)))
			for n := range 25 {
				id := int64(c*1000 + n + 1)
				items := []events.OrderCreatedItem{item(ids[rng.IntN(3)], 1+rng.Int64N(3))}
				if rng.IntN(2) == 0 {
					items = append(items, item(ids[rng.IntN(3)], 1+rng.Int64N(3)))
				}
				if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(id, items...)); err != nil {
					t.Error(err)
					return
				}
				// A third are cancelled, a third paid, a third left pending.
				switch rng.IntN(3) {
				case 0:
					if err := s.app.Stock.Release(ctx, uuid.NewString(), events.OrderCancelled{OrderID: id, CustomerID: 9, Reason: events.CancelCustomer}); err != nil {
						t.Error(err)
						return
					}
				case 1:
					if err := s.app.Stock.Sell(ctx, uuid.NewString(), events.OrderPaid{OrderID: id, CustomerID: 9, PaidAt: time.Now()}); err != nil {
						t.Error(err)
						return
					}
					// A paid order is never restocked, whatever arrives later.
					if err := s.app.Stock.Release(ctx, uuid.NewString(), events.OrderCancelled{OrderID: id, CustomerID: 9, Reason: events.CancelExpired}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for a := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(100+a)))
			for n := range 12 {
				id := ids[rng.IntN(3)]
				if a == 0 && n == 8 {
					// One product is deleted while orders still come and go.
					if r := s.Do(t, &admin, http.MethodDelete, fmt.Sprint("/products/", ids[2]), nil); r.Status != http.StatusOK && r.Status != http.StatusNotFound {
						t.Errorf("delete: %d %s", r.Status, r.Raw)
						return
					}
					continue
				}
				r := s.Do(t, &admin, http.MethodGet, fmt.Sprint("/products/", id), nil)
				for attempt := 0; r.Status == http.StatusOK || r.Status == http.StatusPreconditionFailed; attempt++ {
					var p productJSON
					if err := json.Unmarshal(r.Body.Data, &p); err != nil {
						t.Error(err)
						return
					}
					edit := map[string]any{"name": p.Name, "description": p.Description, "price": p.Price, "quantity": max(0, p.Quantity+rng.Int64N(11)-3)}
					switch rng.IntN(3) {
					case 0:
						edit["name"] = fmt.Sprintf("contended %d.%d.%d", a, n, attempt)
					case 1:
						edit["price"] = strconv.Itoa(10+rng.IntN(90)) + ".25"
					}
					r = s.replace(t, &admin, fmt.Sprint("/products/", id), r.Header.Get("ETag"), edit)
					if r.Status == http.StatusOK {
						break
					}
				}
				if r.Status != http.StatusOK && r.Status != http.StatusNotFound {
					t.Errorf("edit of product %d: %d %s", id, r.Status, r.Raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	for _, id := range ids {
		entries := s.history(t, id)
		if got, want := replay(t, entries), s.row(t, id); got != want {
			t.Fatalf("product %d: replayed %+v, row %+v", id, got, want)
		}
		// Every reservation and every release of the product is in it, for its order.
		moved := map[string]int{}
		for _, e := range entries {
			if e.OrderID != nil {
				moved[e.Kind] += int(*e.Units)
			}
		}
		units := func(status string) int {
			return count(t, s.db, `SELECT coalesce(sum(r.quantity), 0) FROM reservations r JOIN order_stock o USING (order_id) WHERE r.product_id = $1 AND o.status = ANY($2)`, id, strings.Split(status, ","))
		}
		reserved, released, sold := units("reserved,released,sold"), units("released"), units("sold")
		if moved[product.HistoryReserved] != reserved || moved[product.HistoryReleased] != released || moved[product.HistorySold] != sold {
			t.Fatalf("product %d: history moved %v units; the tables say %d reserved, %d released, %d sold", id, moved, reserved, released, sold)
		}
		t.Logf("product %d: %d entries replayed; units reserved %d, released %d, sold %d", id, len(entries), reserved, released, sold)
	}
	if n := count(t, s.db, `SELECT count(*) FROM product_history h WHERE kind IN ('reserved', 'released', 'sold') AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = h.order_id AND r.product_id = h.product_id)`); n != 0 {
		t.Fatalf("%d stock movements name an order that holds no reservation of the product", n)
	}
}
