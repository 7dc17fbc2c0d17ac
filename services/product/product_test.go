package product_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/platform/apitest"
	"github.com/kshop/kshop/services/platform/identity"
	"github.com/kshop/kshop/services/platform/kafka"
	"github.com/kshop/kshop/services/platform/kafkatest"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/telemetry"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tokens"
	"github.com/kshop/kshop/services/product"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var (
	admin    = identity.User{ID: 1, Email: "admin@kshop.local", Roles: []string{"customer", "admin"}}
	customer = identity.User{ID: 2, Email: "ann@example.com", Roles: []string{"customer"}}
	nobody   *identity.User
)

type service struct {
	*apitest.Client
	metrics *apitest.Client // the metrics port
	db      *pgxpool.Pool
	app     *product.App
	brokers string
}

func testConfig(t testing.TB, brokers string) product.Config {
	t.Helper()
	return product.Config{
		ShutdownTimeout:     5 * time.Second,
		Database:            pg.Config{URL: testenv.NewDatabase(t), MaxConns: 20},
		Kafka:               kafka.Connection{Brokers: brokers},
		ConsumerMaxAttempts: 3,
		Identity:            apitest.IdentityConfig(),
	}
}

func start(t testing.TB, cfg product.Config) *service {
	t.Helper()
	app, err := product.New(cfg, quiet, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	client := apitest.Start(t, app.Serve)
	client.Audience = "product"
	return &service{Client: client, metrics: apitest.Run(t, app.ServeMetrics), db: pool, app: app, brokers: cfg.Kafka.Brokers}
}

// newCluster starts a Kafka cluster with every topic of the contract.
func newCluster(t testing.TB) string {
	t.Helper()
	return kafkatest.NewCluster(t, kafkatest.WithTopicsAndDeadLetters(events.DefaultPartitions, events.Topics...))
}

func newService(t testing.TB) *service {
	t.Helper()
	return start(t, testConfig(t, newCluster(t)))
}

func TestMain(m *testing.M) {
	// A real tracer provider, so the outbox has a trace context to carry.
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "product-test", SampleRatio: 1})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = tel.Shutdown(context.Background())
	os.Exit(code)
}

type productJSON struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Price       string    `json:"price"`
	Quantity    int64     `json:"quantity"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func productIn(t testing.TB, r apitest.Reply) productJSON {
	t.Helper()
	var p productJSON
	r.Decode(t, &p)
	return p
}

func productsIn(t testing.TB, r apitest.Reply) []productJSON {
	t.Helper()
	var list []productJSON
	r.Decode(t, &list)
	return list
}

func (s *service) create(t testing.TB, name string, price any, quantity int) productJSON {
	t.Helper()
	return productIn(t, s.Do(t, &admin, http.MethodPost, "/products", map[string]any{
		"name": name, "description": "about " + name, "price": price, "quantity": quantity,
	}).Expect(t, http.StatusCreated, ""))
}

// replace sends PUT path with body and, unless ifMatch is empty, If-Match.
func (s *service) replace(t testing.TB, as *identity.User, path, ifMatch string, body any) apitest.Reply {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{}
	if as != nil {
		s.Identify(t, header, *as)
	}
	if ifMatch != "" {
		header.Set("If-Match", ifMatch)
	}
	return s.Send(t, http.MethodPut, path, "application/json", raw, header)
}

func count(t testing.TB, db *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// topicReader collects every message of some topics, in a consumer group of its own.
type topicReader struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func readTopics(t testing.TB, brokers string, topics ...string) *topicReader {
	t.Helper()
	r := &topicReader{}
	consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{Connection: kafka.Connection{Brokers: brokers}, GroupID: "test-reader-" + testenv.RandomSuffix(), Topics: topics},
		func(_ context.Context, m kafka.Message) error {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
			return nil
		}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = consumer.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *topicReader) where(topic, key string) []kafka.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []kafka.Message
	for _, m := range r.msgs {
		if m.Topic == topic && (key == "" || string(m.Key) == key) {
			out = append(out, m)
		}
	}
	return out
}

func (r *topicReader) await(t testing.TB, topic, key string, n int) []kafka.Message {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%d %s events for key %q", n, topic, key), func() bool {
		return len(r.where(topic, key)) >= n
	})
	return r.where(topic, key)
}

func TestCatalogueLifecycleAnnouncesEveryChange(t *testing.T) {
	s := newService(t)
	reader := readTopics(t, s.brokers, events.TopicProductCreated.Name(), events.TopicProductUpdated.Name(), events.TopicProductDeleted.Name())

	created := s.create(t, "Kopi Luwak", 25000, 10)
	if created.ID <= 0 || created.Price != "25000.00" || created.Quantity != 10 || created.CreatedAt.IsZero() {
		t.Fatalf("created %+v", created)
	}
	key := fmt.Sprint(created.ID)
	got := productIn(t, s.Do(t, nobody, http.MethodGet, "/products/"+key, nil).Expect(t, http.StatusOK, ""))
	if got != created {
		t.Fatalf("GET %+v, want %+v", got, created)
	}
	updated := productIn(t, s.replace(t, &admin, "/products/"+key, `"1"`, map[string]any{
		"name": "Kopi Luwak Premium", "description": "roasted", "price": "0.1", "quantity": 7,
	}).Expect(t, http.StatusOK, ""))
	if updated.Price != "0.10" || updated.Quantity != 7 || updated.Name != "Kopi Luwak Premium" || !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Fatalf("updated %+v", updated)
	}
	s.Do(t, &admin, http.MethodDelete, "/products/"+key, nil).Expect(t, http.StatusOK, "success")
	s.Do(t, nobody, http.MethodGet, "/products/"+key, nil).Expect(t, http.StatusNotFound, "product not found")
	s.replace(t, &admin, "/products/"+key, `"2"`, map[string]any{"name": "x", "description": "y", "price": 1, "quantity": 1}).
		Expect(t, http.StatusNotFound, "product not found")
	s.Do(t, &admin, http.MethodDelete, "/products/"+key, nil).Expect(t, http.StatusNotFound, "product not found")

	createdEvent := reader.await(t, events.TopicProductCreated.Name(), key, 1)[0]
	updatedEvent := reader.await(t, events.TopicProductUpdated.Name(), key, 1)[0]
	deletedEvent := reader.await(t, events.TopicProductDeleted.Name(), key, 1)[0]
	for _, m := range []kafka.Message{createdEvent, updatedEvent, deletedEvent} {
		if uuid.Validate(m.Headers[kafka.EventIDHeader]) != nil || m.Headers[events.HeaderEventType] != m.Topic ||
			m.Headers[events.HeaderEventVersion] != "1" || m.Headers[events.HeaderTraceParent] == "" {
			t.Errorf("%s headers %v", m.Topic, m.Headers)
		}
	}
	first, err := events.Decode[events.Product](createdEvent.Value)
	if err != nil || first.Version != 1 || first.Price.String() != "25000.00" || first.Quantity != 10 {
		t.Fatalf("product-created %+v, %v", first, err)
	}
	second, err := events.Decode[events.Product](updatedEvent.Value)
	if err != nil || second.Version != 2 || second.Price.String() != "0.10" {
		t.Fatalf("product-updated %+v, %v", second, err)
	}
	gone, err := events.Decode[events.ProductDeleted](deletedEvent.Value)
	if err != nil || gone.Version != 3 || gone.ID != created.ID || gone.DeletedAt.IsZero() {
		t.Fatalf("product-deleted %+v, %v", gone, err)
	}
}

func TestOnlyAdminsWrite(t *testing.T) {
	s := newService(t)
	body := map[string]any{"name": "x", "description": "y", "price": 1, "quantity": 1}
	s.Do(t, nobody, http.MethodPost, "/products", body).Expect(t, http.StatusUnauthorized, "unauthorized")
	s.Do(t, &customer, http.MethodPost, "/products", body).Expect(t, http.StatusForbidden, "forbidden")
	p := s.create(t, "kept", 1, 1)
	path := fmt.Sprint("/products/", p.ID)
	s.replace(t, &customer, path, `"1"`, body).Expect(t, http.StatusForbidden, "forbidden")
	s.Do(t, &customer, http.MethodDelete, path, nil).Expect(t, http.StatusForbidden, "forbidden")
	s.Do(t, nobody, http.MethodDelete, path, nil).Expect(t, http.StatusUnauthorized, "unauthorized")
	if got := productIn(t, s.Do(t, &customer, http.MethodGet, path, nil).Expect(t, http.StatusOK, "")); got.Name != "kept" {
		t.Fatalf("product changed by a customer: %+v", got)
	}
	if n := count(t, s.db, `SELECT count(*) FROM products`); n != 1 {
		t.Fatalf("%d products, want 1", n)
	}
}

// A caller that reaches the service past the gateway cannot act as an
// admin: bare X-User-* headers, a token for another service, signed by
// another key or expired are all refused, and nothing is written.
func TestIdentityNeedsTheGatewaysToken(t *testing.T) {
	s := newService(t)
	body := map[string]any{"name": "x", "description": "y", "price": 1, "quantity": 1}
	strangerKeys, err := identity.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	longAgo := time.Now().Add(-time.Hour)
	signed := func(i *identity.Issuer, audience string) http.Header {
		h := http.Header{}
		if err := i.Header(h, admin, audience); err != nil {
			t.Fatal(err)
		}
		return h
	}
	forged := http.Header{}
	admin.Header(forged)
	for name, header := range map[string]http.Header{
		"bare headers":         forged,
		"token for the orders": signed(apitest.Issuer(), "order"),
		"token by another key": signed(&identity.Issuer{Keys: tokens.Static(strangerKeys), TTL: time.Minute}, "product"),
		"expired token":        signed(&identity.Issuer{Keys: tokens.Static(apitest.IdentityKeys()), TTL: time.Minute, Now: func() time.Time { return longAgo }}, "product"),
		"forged roles on token": func() http.Header {
			h := signed(apitest.Issuer(), "product")
			h.Set(identity.HeaderRoles, "admin")
			return h
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			raw, _ := json.Marshal(body)
			s.Send(t, http.MethodPost, "/products", "application/json", raw, header).Expect(t, http.StatusUnauthorized, "unauthorized")
			s.Send(t, http.MethodGet, "/products", "", nil, header).Expect(t, http.StatusUnauthorized, "unauthorized")
		})
	}
	if n := count(t, s.db, `SELECT count(*) FROM products`); n != 0 {
		t.Fatalf("%d products written by forged admins", n)
	}
	s.Do(t, &admin, http.MethodPost, "/products", body).Expect(t, http.StatusCreated, "")
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	s := newService(t)
	valid := func(change func(map[string]any)) map[string]any {
		m := map[string]any{"name": "Tea", "description": "green", "price": "10.50", "quantity": 5}
		change(m)
		return m
	}
	for name, tc := range map[string]struct {
		body  any
		field string
	}{
		"zero price":          {valid(func(m map[string]any) { m["price"] = 0 }), "price"},
		"negative price":      {valid(func(m map[string]any) { m["price"] = "-1" }), "price"},
		"three decimals":      {valid(func(m map[string]any) { m["price"] = "10.505" }), "price"},
		"huge price":          {valid(func(m map[string]any) { m["price"] = "100000000" }), "price"},
		"price not a number":  {valid(func(m map[string]any) { m["price"] = "ten" }), "price"},
		"price null":          {valid(func(m map[string]any) { m["price"] = nil }), "price"},
		"price as object":     {valid(func(m map[string]any) { m["price"] = map[string]int{"a": 1} }), "price"},
		"missing price":       {valid(func(m map[string]any) { delete(m, "price") }), "price"},
		"fractional quantity": {`{"name":"Tea","description":"green","price":1,"quantity":1.5}`, "quantity"},
		"negative quantity":   {valid(func(m map[string]any) { m["quantity"] = -1 }), "quantity"},
		"huge quantity":       {valid(func(m map[string]any) { m["quantity"] = 1_000_001 }), "quantity"},
		"quantity as string":  {valid(func(m map[string]any) { m["quantity"] = "5" }), "quantity"},
		"empty name":          {valid(func(m map[string]any) { m["name"] = "" }), "name"},
		"long name":           {valid(func(m map[string]any) { m["name"] = strings.Repeat("n", 256) }), "name"},
		"missing description": {valid(func(m map[string]any) { delete(m, "description") }), "description"},
		"long description":    {valid(func(m map[string]any) { m["description"] = strings.Repeat("d", 5001) }), "description"},
		"unknown field":       {valid(func(m map[string]any) { m["stock"] = 3 }), "stock"},
		"malformed JSON":      {`{"name":`, "body"},
		"not an object":       {`"Tea"`, "body"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.Do(t, &admin, http.MethodPost, "/products", tc.body).Expect(t, http.StatusBadRequest, "input validation error")
			if len(r.Body.Errors) == 0 || r.Body.Errors[0].Field != tc.field {
				t.Fatalf("errors %+v, want %q first", r.Body.Errors, tc.field)
			}
		})
	}
	s.Do(t, &admin, http.MethodPost, "/products", "").Expect(t, http.StatusBadRequest, "missing body request")
	s.Do(t, &admin, http.MethodGet, "/products/abc", nil).Expect(t, http.StatusBadRequest, "expected a numeric value but got 'abc'")
	s.Do(t, &admin, http.MethodGet, "/products/..%2F..%2Fetc", nil).Expect(t, http.StatusNotFound, "route not found")
	s.Do(t, &admin, http.MethodGet, "/products/99999999999999999999", nil).Expect(t, http.StatusBadRequest, "")
	s.Do(t, &admin, http.MethodGet, "/products/-1", nil).Expect(t, http.StatusNotFound, "product not found")
	if n := count(t, s.db, `SELECT count(*) FROM products`) + count(t, s.db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("bad requests wrote %d rows", n)
	}
}

func TestSearchFiltersAndPages(t *testing.T) {
	s := newService(t)
	for _, name := range []string{"Blue Shirt", "blue jeans", "Red%Hat", "under_score", "Green tea"} {
		s.create(t, name, "9.99", 1)
	}
	gone := s.create(t, "Blue ghost", 1, 1)
	s.Do(t, &admin, http.MethodDelete, fmt.Sprint("/products/", gone.ID), nil).Expect(t, http.StatusOK, "")

	names := func(query string) string {
		t.Helper()
		list := productsIn(t, s.Do(t, nobody, http.MethodGet, "/products?"+query, nil).Expect(t, http.StatusOK, ""))
		out := make([]string, len(list))
		for i, p := range list {
			out[i] = p.Name
		}
		return strings.Join(out, ",")
	}
	for query, want := range map[string]string{
		"name=blue":                                             "Blue Shirt,blue jeans",
		"name=BLUE&description=jeans":                           "blue jeans",
		"name=" + url.QueryEscape("%"):                          "Red%Hat",
		"name=" + url.QueryEscape("_"):                          "under_score",
		"name=" + url.QueryEscape("%' OR 1=1 --"):               "",
		"name=" + url.QueryEscape("'; DROP TABLE products; --"): "",
		"name=" + url.QueryEscape("茶"):                          "",
		"description=about+green":                               "Green tea",
	} {
		if got := names(query); got != want {
			t.Errorf("?%s found %q, want %q", query, got, want)
		}
	}
	if n := count(t, s.db, `SELECT count(*) FROM products`); n != 6 {
		t.Fatalf("the products table has %d rows after hostile searches", n)
	}
}

func TestPagination(t *testing.T) {
	s := newService(t)
	for i := range 12 {
		s.create(t, fmt.Sprintf("item %02d", i), 1, 1)
	}
	page := func(query string) apitest.Reply {
		return s.Do(t, nobody, http.MethodGet, "/products?"+query, nil).Expect(t, http.StatusOK, "")
	}
	first := page("limit=5")
	if len(productsIn(t, first)) != 5 || first.Body.Paging.TotalItem != 12 || first.Body.Paging.TotalPage != 3 || first.Body.Paging.Page != 1 || first.Body.Paging.Size != 5 {
		t.Fatalf("first page %s", first.Raw)
	}
	if l := first.Body.Paging.Links; l.Prev != "" || !strings.Contains(l.Next, "page=2") || !strings.Contains(l.Last, "page=3") {
		t.Fatalf("first page links %v", l)
	}
	last := page("limit=5&page=3")
	if len(productsIn(t, last)) != 2 || last.Body.Paging.Links.Next != "" {
		t.Fatalf("last page %s", last.Raw)
	}
	past := page("limit=5&page=9")
	if len(productsIn(t, past)) != 0 || past.Body.Paging.TotalItem != 12 || string(past.Body.Data) != "[]" {
		t.Fatalf("page past the end %s", past.Raw)
	}
	if got := page("").Body.Paging.Size; got != 10 {
		t.Fatalf("default page size %d, want 10", got)
	}
	for _, bad := range []string{"limit=0", "limit=26", "limit=-1", "limit=ten", "page=0", "page=-3", "page=1.5", "page=abc"} {
		r := s.Do(t, nobody, http.MethodGet, "/products?"+bad, nil).Expect(t, http.StatusBadRequest, "input validation error")
		if field := strings.SplitN(bad, "=", 2)[0]; len(r.Body.Errors) != 1 || r.Body.Errors[0].Field != field {
			t.Errorf("?%s: errors %+v, want one for %s", bad, r.Body.Errors, field)
		}
	}
}

func orderOf(orderID int64, items ...events.OrderCreatedItem) events.OrderCreated {
	return events.OrderCreated{OrderID: orderID, CustomerID: 9, CustomerEmail: "c@example.com", Items: items,
		TotalAmount: money.MustParse("1"), CreatedAt: time.Now()}
}

func item(productID, quantity int64) events.OrderCreatedItem {
	return events.OrderCreatedItem{ProductID: productID, Quantity: quantity, Price: money.MustParse("1")}
}

func stockOf(t testing.TB, s *service, id int64) int {
	t.Helper()
	return count(t, s.db, `SELECT quantity FROM products WHERE id = $1`, id)
}

func TestConcurrentOrdersNeverOversell(t *testing.T) {
	s := newService(t)
	p := s.create(t, "last units", 1, 50)
	const orders = 200
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.app.Stock.Reserve(context.Background(), uuid.NewString(), orderOf(int64(1000+i), item(p.ID, 1)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := stockOf(t, s, p.ID); got != 0 {
		t.Fatalf("stock %d after 200 orders for 50 units, want 0", got)
	}
	reserved := count(t, s.db, `SELECT count(*) FROM order_stock WHERE status = 'reserved'`)
	rejected := count(t, s.db, `SELECT count(*) FROM order_stock WHERE status = 'rejected' AND reason = 'insufficient_stock'`)
	units := count(t, s.db, `SELECT coalesce(sum(quantity), 0) FROM reservations`)
	if reserved != 50 || rejected != 150 || units != 50 {
		t.Fatalf("reserved %d orders (%d units), rejected %d; want 50, 50, 150", reserved, units, rejected)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'stock-reserved'`); n != 50 {
		t.Fatalf("%d stock-reserved events, want 50", n)
	}
	if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'stock-rejected'`); n != 150 {
		t.Fatalf("%d stock-rejected events, want 150", n)
	}
}

func TestAnOrderShortOnOneItemReservesNothing(t *testing.T) {
	s := newService(t)
	plenty := s.create(t, "plenty", 1, 100)
	scarce := s.create(t, "scarce", 1, 2)
	gone := s.create(t, "gone", 1, 5)
	s.Do(t, &admin, http.MethodDelete, fmt.Sprint("/products/", gone.ID), nil).Expect(t, http.StatusOK, "")
	ctx := context.Background()

	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(1, item(plenty.ID, 10), item(scarce.ID, 3))); err != nil {
		t.Fatal(err)
	}
	if stockOf(t, s, plenty.ID) != 100 || stockOf(t, s, scarce.ID) != 2 {
		t.Fatal("a rejected order took stock")
	}
	var payload []byte
	if err := s.db.QueryRow(ctx, `SELECT payload FROM outbox WHERE topic = 'stock-rejected' AND key = '1'`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	rejected, err := events.Decode[events.StockRejected](payload)
	if err != nil || rejected.Reason != product.ReasonInsufficientStock || len(rejected.Shortages) != 1 ||
		rejected.Shortages[0] != (events.Shortage{ProductID: scarce.ID, Requested: 3, Available: 2}) {
		t.Fatalf("stock-rejected %+v, %v", rejected, err)
	}

	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(2, item(plenty.ID, 1), item(gone.ID, 1), item(424242, 1))); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(ctx, `SELECT payload FROM outbox WHERE topic = 'stock-rejected' AND key = '2'`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if rejected, _ := events.Decode[events.StockRejected](payload); rejected.Reason != product.ReasonProductUnavailable || len(rejected.Shortages) != 2 {
		t.Fatalf("order of a deleted and an unknown product: %+v", rejected)
	}

	// The same product twice in one order counts as the sum.
	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(3, item(scarce.ID, 1), item(scarce.ID, 2))); err != nil {
		t.Fatal(err)
	}
	if got := stockOf(t, s, scarce.ID); got != 2 {
		t.Fatalf("stock %d, want 2: 1+2 units of 2 must be rejected", got)
	}
}

func TestRedeliveredEventsChangeNothing(t *testing.T) {
	s := newService(t)
	p := s.create(t, "tea", 1, 10)
	ctx := context.Background()
	created := uuid.NewString()
	order := orderOf(77, item(p.ID, 4))
	for range 3 {
		if err := s.app.Stock.Reserve(ctx, created, order); err != nil {
			t.Fatal(err)
		}
	}
	// The same order under a new event id (a producer that retried) is still one order.
	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), order); err != nil {
		t.Fatal(err)
	}
	if got := stockOf(t, s, p.ID); got != 6 {
		t.Fatalf("stock %d after redelivered order-created, want 6", got)
	}
	cancel := events.OrderCancelled{OrderID: 77, CustomerID: 9, Reason: events.CancelCustomer, Items: []events.CancelledItem{{ProductID: p.ID, Quantity: 4}}}
	cancelled := uuid.NewString()
	for range 3 {
		if err := s.app.Stock.Release(ctx, cancelled, cancel); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.app.Stock.Release(ctx, uuid.NewString(), cancel); err != nil {
		t.Fatal(err)
	}
	if got := stockOf(t, s, p.ID); got != 10 {
		t.Fatalf("stock %d after redelivered order-cancelled, want 10", got)
	}
	// A reservation that comes after its order's cancel takes nothing.
	late := events.OrderCancelled{OrderID: 78, CustomerID: 9, Reason: events.CancelCustomer}
	if err := s.app.Stock.Release(ctx, uuid.NewString(), late); err != nil {
		t.Fatal(err)
	}
	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(78, item(p.ID, 1))); err != nil {
		t.Fatal(err)
	}
	if got := stockOf(t, s, p.ID); got != 10 {
		t.Fatalf("stock %d, want 10: an order cancelled before its reservation took stock", got)
	}
	// Cancelling a rejected order gives nothing back.
	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(79, item(p.ID, 11))); err != nil {
		t.Fatal(err)
	}
	if err := s.app.Stock.Release(ctx, uuid.NewString(), events.OrderCancelled{OrderID: 79, CustomerID: 9, Reason: events.CancelOutOfStock}); err != nil {
		t.Fatal(err)
	}
	if got := stockOf(t, s, p.ID); got != 10 {
		t.Fatalf("stock %d, want 10: cancelling a rejected order restocked", got)
	}
}

func TestSagaThroughKafkaWithTwoReplicas(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(t, brokers)
	s := start(t, cfg)
	start(t, cfg) // a second replica in the same consumer groups
	reader := readTopics(t, brokers, events.TopicStockReserved.Name(), events.TopicStockRejected.Name(), events.TopicProductUpdated.Name(),
		kafka.DeadLetterTopic(events.TopicOrderCreated.Name()))
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Connection: kafka.Connection{Brokers: brokers}, ClientID: "order-test"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	p := s.create(t, "beans", 1, 5)

	kafkatest.Publish(t, producer, events.TopicOrderCreated, events.Key(500), orderOf(500, item(p.ID, 3)), uuid.NewString())
	reader.await(t, events.TopicStockReserved.Name(), "500", 1)
	kafkatest.Publish(t, producer, events.TopicOrderCreated, events.Key(501), orderOf(501, item(p.ID, 3)), uuid.NewString())
	rejected, err := events.Decode[events.StockRejected](reader.await(t, events.TopicStockRejected.Name(), "501", 1)[0].Value)
	if err != nil || rejected.Shortages[0].Available != 2 {
		t.Fatalf("stock-rejected %+v, %v", rejected, err)
	}
	// The order service's copy learns the stock level from product-updated.
	updates := reader.await(t, events.TopicProductUpdated.Name(), fmt.Sprint(p.ID), 1)
	if latest, _ := events.Decode[events.Product](updates[len(updates)-1].Value); latest.Quantity != 2 || latest.Version != 2 {
		t.Fatalf("product-updated after the reservation: %+v", latest)
	}

	cancelID := uuid.NewString()
	cancel := events.OrderCancelled{OrderID: 500, CustomerID: 9, Reason: events.CancelExpired, Items: []events.CancelledItem{{ProductID: p.ID, Quantity: 3}}}
	kafkatest.Publish(t, producer, events.TopicOrderCancelled, events.Key(500), cancel, cancelID)
	kafkatest.Publish(t, producer, events.TopicOrderCancelled, events.Key(500), cancel, cancelID) // redelivered
	testenv.WaitFor(t, 20*time.Second, "the restock", func() bool { return stockOf(t, s, p.ID) == 5 })

	// A poison message goes to the dead-letter topic and does not block the partition.
	if err := producer.Publish(context.Background(), kafka.Message{Topic: events.TopicOrderCreated.Name(), Key: []byte("502"),
		Value: []byte(`{"order_id": "not a number"}`), Headers: map[string]string{kafka.EventIDHeader: uuid.NewString()}}); err != nil {
		t.Fatal(err)
	}
	kafkatest.Publish(t, producer, events.TopicOrderCreated, events.Key(502), orderOf(502, item(p.ID, 1)), uuid.NewString())
	reader.await(t, kafka.DeadLetterTopic(events.TopicOrderCreated.Name()), "502", 1)
	reader.await(t, events.TopicStockReserved.Name(), "502", 1)
	time.Sleep(300 * time.Millisecond)
	if got := stockOf(t, s, p.ID); got != 4 {
		t.Fatalf("stock %d, want 4 (5 - 3 + 3 - 1)", got)
	}

	// Paying the order sells its unit: the history says so, the stock stays.
	paid := uuid.NewString()
	kafkatest.Publish(t, producer, events.TopicOrderPaid, events.Key(502), events.OrderPaid{OrderID: 502, CustomerID: 9, PaidAt: time.Now()}, paid)
	kafkatest.Publish(t, producer, events.TopicOrderPaid, events.Key(502), events.OrderPaid{OrderID: 502, CustomerID: 9, PaidAt: time.Now()}, paid) // redelivered
	testenv.WaitFor(t, 20*time.Second, "the sale", func() bool {
		return count(t, s.db, `SELECT count(*) FROM product_history WHERE kind = 'sold' AND order_id = 502 AND units = 1`) == 1
	})
	if count(t, s.db, `SELECT count(*) FROM order_stock WHERE order_id = 502 AND status = 'sold'`) != 1 || stockOf(t, s, p.ID) != 4 {
		t.Fatal("the paid order is not sold, or the sale moved the stock")
	}
}

func TestConfigNamesMissingBrokers(t *testing.T) {
	if _, err := product.New(product.Config{Database: pg.Config{URL: "postgres://127.0.0.1:1/x"}}, quiet, prometheus.NewRegistry()); err == nil ||
		!strings.Contains(err.Error(), "KSHOP_PRODUCT_KAFKA_BROKERS") {
		t.Fatalf("New without brokers: %v", err)
	}
}

// Admin stock edits: PUT wrote the quantity as an absolute number
// whatever had happened since the admin read it, so a reservation made
// meanwhile was overwritten and its later release invented units. Before the
// fix the stale PUT below answered 200, the stock became 15 with 2 units still
// reserved, and the release made it 17 for 15 units ever received.
func TestReplaceAppliesOnlyToTheVersionRead(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	created := s.Do(t, &admin, http.MethodPost, "/products", map[string]any{"name": "tea", "description": "green", "price": 1, "quantity": 10}).
		Expect(t, http.StatusCreated, "")
	p := productIn(t, created)
	path := fmt.Sprint("/products/", p.ID)
	if etag := created.Header.Get("ETag"); etag != `"1"` {
		t.Fatalf("POST answered ETag %q, want \"1\"", etag)
	}
	if etag := s.Do(t, nobody, http.MethodGet, path, nil).Expect(t, http.StatusOK, "").Header.Get("ETag"); etag != `"1"` {
		t.Fatalf("GET answered ETag %q, want \"1\"", etag)
	}
	receivedFive := func(seen int64) map[string]any {
		return map[string]any{"name": "tea", "description": "green", "price": 1, "quantity": seen + 5}
	}
	unchanged := func(why string) {
		t.Helper()
		if v := count(t, s.db, `SELECT version FROM products WHERE id = $1`, p.ID); v != 1 {
			t.Fatalf("%s changed the product (version %d)", why, v)
		}
		if n := count(t, s.db, `SELECT count(*) FROM outbox WHERE topic = 'product-updated'`); n != 0 {
			t.Fatalf("%s announced %d changes", why, n)
		}
	}
	for name, ifMatch := range map[string]string{"no If-Match": "", "If-Match: *": "*", "an empty If-Match": " , "} {
		r := s.replace(t, &admin, path, ifMatch, receivedFive(10)).Expect(t, http.StatusPreconditionRequired, "precondition required")
		if r.FirstError() != "If-Match" {
			t.Fatalf("%s: the 428 names %q, want If-Match: %s", name, r.FirstError(), r.Raw)
		}
		unchanged(name)
	}

	// An order reserves 2 units after the admin read the product (version 1, 10 units).
	if err := s.app.Stock.Reserve(ctx, uuid.NewString(), orderOf(77, item(p.ID, 2))); err != nil {
		t.Fatal(err)
	}
	for _, stale := range []string{`"1"`, `W/"2"`, `"2 "`, `"02"`, `2`, `"0x2"`, `"abc"`, `"99999999999999999999"`} {
		r := s.replace(t, &admin, path, stale, receivedFive(10)).Expect(t, http.StatusPreconditionFailed, "product changed since it was read")
		now := productIn(t, r)
		if r.Header.Get("ETag") != `"2"` || now.Quantity != 8 || r.FirstError() != "If-Match" {
			t.Fatalf("If-Match %s: 412 with ETag %q, quantity %d, errors %+v; want the product as it is now (\"2\", 8 units)",
				stale, r.Header.Get("ETag"), now.Quantity, r.Body.Errors)
		}
		if got := stockOf(t, s, p.ID); got != 8 {
			t.Fatalf("If-Match %s: the refused PUT left %d units, want the 8 the reservation left", stale, got)
		}
	}
	// Reapplied to what the 412 showed (8 units), the five received units add up.
	r := s.replace(t, &admin, path, `"7", "2"`, receivedFive(8)).Expect(t, http.StatusOK, "")
	if r.Header.Get("ETag") != `"3"` || productIn(t, r).Quantity != 13 {
		t.Fatalf("PUT answered ETag %q, %s", r.Header.Get("ETag"), r.Body.Data)
	}
	if err := s.app.Stock.Release(ctx, uuid.NewString(), events.OrderCancelled{OrderID: 77, CustomerID: 9, Reason: events.CancelCustomer}); err != nil {
		t.Fatal(err)
	}
	if got := stockOf(t, s, p.ID); got != 15 {
		t.Fatalf("stock %d after the release, want 15: 10 created + 5 received, nothing held", got)
	}
}
