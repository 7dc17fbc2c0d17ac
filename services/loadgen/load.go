package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// LoadConfig shapes a load run.
type LoadConfig struct {
	Gateway       string
	Inbox         Inbox
	Admin         string
	AdminPassword string
	// Rate is the arrival rate in requests per second, held whatever the
	// latency (open loop: a slow platform gets more requests in flight, not
	// fewer requests, so slowness shows in the latencies instead of hiding).
	Rate     float64
	Duration time.Duration
	// MaxInFlight caps concurrent requests; arrivals beyond it are dropped and counted.
	MaxInFlight int
	// Mix weighs the operations: browse, search, order, pay.
	Mix map[string]int
	// Users and Products are created before the run starts.
	Users, Products int
	// Stock is each product's starting quantity; 0 means a million (never sold out).
	Stock int
	// Accepted, when set, is told of every order and payment the gateway
	// answered 2xx, as it happens (from many goroutines at once), so a caller
	// can later prove that each one exists.
	Accepted func(Accepted)
	// OnStart, when set, is called once the users and products are ready and
	// the timed run begins.
	OnStart func()
	// Progress receives a line a second; nil: quiet.
	Progress io.Writer
}

// Operations of the mix.
const (
	OpBrowse = "browse"
	OpSearch = "search"
	OpOrder  = "order"
	OpPay    = "pay"
)

// ParseMix reads "browse=50,search=20,order=20,pay=10".
func ParseMix(spec string) (map[string]int, error) {
	mix := map[string]int{}
	for _, part := range strings.Split(spec, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(part), "=")
		var w int
		if _, err := fmt.Sscan(weight, &w); !ok || err != nil || w < 0 {
			return nil, fmt.Errorf("mix %q: want op=weight", part)
		}
		switch name {
		case OpBrowse, OpSearch, OpOrder, OpPay:
			mix[name] = w
		default:
			return nil, fmt.Errorf("mix %q: unknown operation (browse, search, order, pay)", name)
		}
	}
	return mix, nil
}

// Accepted is an order or a payment the platform said yes to.
type Accepted struct {
	Op      string    `json:"op"` // OpOrder or OpPay
	OrderID int64     `json:"order_id"`
	Status  int       `json:"status"`
	At      time.Time `json:"at"`
}

// OpStats is what one operation did.
type OpStats struct {
	Requests  int
	OK        int
	ByStatus  map[int]int // non-2xx answers
	Failures  int         // no answer at all (connection errors, timeouts)
	Latencies []time.Duration
}

// Report is a load run's outcome.
type Report struct {
	Elapsed time.Duration
	Dropped int64
	Ops     map[string]*OpStats
}

type loadState struct {
	cfg      LoadConfig
	api      *Client
	users    []*Client
	products []int64
	names    []string
	mu       sync.Mutex
	report   Report
	unpaid   chan payable
}

type payable struct {
	user    *Client
	orderID int64
	placed  time.Time
}

// Load prepares users and products, then sends cfg.Rate requests a second of
// the mix for cfg.Duration, and reports per operation.
func Load(ctx context.Context, cfg LoadConfig) (Report, error) {
	s := &loadState{cfg: cfg, api: NewClient(strings.TrimSuffix(cfg.Gateway, "/")), unpaid: make(chan payable, 10_000),
		report: Report{Ops: map[string]*OpStats{}}}
	if err := s.prepare(ctx); err != nil {
		return Report{}, err
	}
	ops, weights := []string{}, []int{}
	total := 0
	for _, op := range []string{OpBrowse, OpSearch, OpOrder, OpPay} {
		if w := cfg.Mix[op]; w > 0 {
			ops, weights = append(ops, op), append(weights, w)
			total += w
		}
		s.report.Ops[op] = &OpStats{ByStatus: map[int]int{}}
	}
	if total == 0 {
		return Report{}, fmt.Errorf("the mix has no operation with a weight")
	}
	pick := func() string {
		n := rand.IntN(total)
		for i, w := range weights {
			if n < w {
				return ops[i]
			}
			n -= w
		}
		return ops[len(ops)-1]
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	var inFlight atomic.Int64
	var wg sync.WaitGroup
	started := time.Now()
	if cfg.OnStart != nil {
		cfg.OnStart()
	}
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-progress.C:
			s.printProgress(time.Since(started), inFlight.Load())
		case <-ticker.C:
			if inFlight.Load() >= int64(cfg.MaxInFlight) {
				s.mu.Lock()
				s.report.Dropped++
				s.mu.Unlock()
				continue
			}
			inFlight.Add(1)
			wg.Add(1)
			op := pick()
			go func() {
				defer wg.Done()
				defer inFlight.Add(-1)
				s.do(ctx, op)
			}()
		}
	}
	wg.Wait()
	s.report.Elapsed = time.Since(started)
	return s.report, nil
}

func (s *loadState) prepare(ctx context.Context) error {
	admin, err := SignUp(ctx, s.api, s.cfg.Inbox, s.cfg.Admin, s.cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("sign in the admin %s: %w", s.cfg.Admin, err)
	}
	tag := fmt.Sprint(time.Now().Unix())
	stock := s.cfg.Stock
	if stock == 0 {
		stock = 1_000_000
	}
	for i := range s.cfg.Products {
		var p product
		name := fmt.Sprintf("Load %s item %03d", tag, i)
		if err := admin.Expect(ctx, http.StatusCreated, http.MethodPost, "/products",
			map[string]any{"name": name, "description": "load test stock", "price": fmt.Sprintf("%d.50", 1+i%50), "quantity": stock}, &p); err != nil {
			return err
		}
		s.products, s.names = append(s.products, p.ID), append(s.names, name)
	}
	for i := range s.cfg.Users {
		user, err := SignUp(ctx, s.api, s.cfg.Inbox, fmt.Sprintf("load-%s-%d@example.com", tag, i), "load-password")
		if err != nil {
			return err
		}
		s.users = append(s.users, user)
	}
	// The order service learns the products from Kafka; wait until it can sell them.
	probe := s.users[0]
	return retryUntil(ctx, 30*time.Second, func() error {
		var o struct{ ID int64 }
		if err := probe.Expect(ctx, http.StatusCreated, http.MethodPost, "/orders",
			map[string]any{"request_id": "load-probe-" + tag, "items": []map[string]any{{"product_id": s.products[len(s.products)-1], "quantity": 1}}}, &o); err != nil {
			return err
		}
		if s.cfg.Accepted != nil {
			s.cfg.Accepted(Accepted{Op: OpOrder, OrderID: o.ID, Status: http.StatusCreated, At: time.Now()})
		}
		return nil
	})
}

func (s *loadState) do(ctx context.Context, op string) {
	user := s.users[rand.IntN(len(s.users))]
	var method, path string
	var body any
	var payingFor int64
	switch op {
	case OpBrowse:
		method, path = http.MethodGet, fmt.Sprintf("/products?page=%d&limit=10", 1+rand.IntN(3))
	case OpSearch:
		name := s.names[rand.IntN(len(s.names))]
		method, path = http.MethodGet, "/products?name="+strings.ReplaceAll(name[len(name)-8:], " ", "+")
	case OpOrder:
		first := rand.IntN(len(s.products))
		items := []map[string]any{{"product_id": s.products[first], "quantity": 1 + rand.IntN(2)}}
		if second := (first + 1) % len(s.products); second != first && rand.IntN(2) == 0 {
			items = append(items, map[string]any{"product_id": s.products[second], "quantity": 1})
		}
		method, path, body = http.MethodPost, "/orders", map[string]any{"request_id": fmt.Sprintf("load-%d", rand.Int64()), "items": items}
	case OpPay:
		select {
		case p := <-s.unpaid:
			if time.Since(p.placed) < 500*time.Millisecond {
				// Give the stock reservation its moment without holding an
				// in-flight slot asleep (that would cap the rate at the sleep,
				// not at the platform): the order goes back in line, at its
				// end, and an order is placed instead.
				select {
				case s.unpaid <- p:
				default:
				}
				s.do(ctx, OpOrder)
				return
			}
			user, payingFor = p.user, p.orderID
			method, path, body = http.MethodPost, "/orders/pay", map[string]any{"request_id": fmt.Sprintf("pay-%d", p.orderID), "order_id": p.orderID}
		default:
			s.do(ctx, OpOrder) // nothing to pay yet: place an order instead
			return
		}
	}
	started := time.Now()
	r, err := user.Call(ctx, method, path, body)
	latency := time.Since(started)
	s.mu.Lock()
	stats := s.report.Ops[op]
	stats.Requests++
	stats.Latencies = append(stats.Latencies, latency)
	switch {
	case err != nil:
		stats.Failures++
	case r.Status >= 200 && r.Status < 300:
		stats.OK++
	default:
		stats.ByStatus[r.Status]++
	}
	s.mu.Unlock()
	if err != nil || r.Status < 200 || r.Status >= 300 {
		return
	}
	if op == OpPay && s.cfg.Accepted != nil {
		s.cfg.Accepted(Accepted{Op: OpPay, OrderID: payingFor, Status: r.Status, At: time.Now()})
	}
	if op == OpOrder && r.Status == http.StatusCreated {
		var o struct{ ID int64 }
		if jsonDecode(r.Data, &o) == nil {
			if s.cfg.Accepted != nil {
				s.cfg.Accepted(Accepted{Op: OpOrder, OrderID: o.ID, Status: r.Status, At: time.Now()})
			}
			select {
			case s.unpaid <- payable{user: user, orderID: o.ID, placed: time.Now()}:
			default:
			}
		}
	}
}

func (s *loadState) printProgress(elapsed time.Duration, inFlight int64) {
	if s.cfg.Progress == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sent, ok := 0, 0
	var all []time.Duration
	for _, st := range s.report.Ops {
		sent += st.Requests
		ok += st.OK
		all = append(all, st.Latencies...)
	}
	slices.Sort(all)
	fmt.Fprintf(s.cfg.Progress, "%5.0fs/%v  sent %6d  ok %6d  errors %5d  in flight %3d  dropped %4d  p99 %v\n",
		elapsed.Seconds(), s.cfg.Duration, sent, ok, sent-ok, inFlight, s.report.Dropped, percentile(all, 0.99).Round(time.Millisecond))
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// Print writes the final table.
func (r Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\trequests\tok\terrors\tp50\tp90\tp99\tmax\t")
	for _, op := range []string{OpBrowse, OpSearch, OpOrder, OpPay} {
		st := r.Ops[op]
		if st == nil || st.Requests == 0 {
			continue
		}
		lat := slices.Clone(st.Latencies)
		slices.Sort(lat)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%v\t%v\t%v\t%v\t\n", op, st.Requests, st.OK, errorSummary(st),
			percentile(lat, 0.50).Round(100*time.Microsecond), percentile(lat, 0.90).Round(100*time.Microsecond),
			percentile(lat, 0.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	}
	tw.Flush()
	fmt.Fprintf(w, "elapsed %v, arrivals dropped at the in-flight cap: %d\n", r.Elapsed.Round(time.Millisecond), r.Dropped)
}

// Summary is a report in a form programs read (loadgen load -json): counts per
// operation, answers by status, and the latency percentiles in milliseconds.
type Summary struct {
	ElapsedSeconds float64              `json:"elapsed_seconds"`
	Dropped        int64                `json:"dropped"`
	Ops            map[string]OpSummary `json:"ops"`
}

// OpSummary is one operation's part of a Summary.
type OpSummary struct {
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	ByStatus map[string]int `json:"by_status,omitempty"` // non-2xx answers by code
	NoAnswer int            `json:"no_answer"`           // connection errors and timeouts
	P50Ms    float64        `json:"p50_ms"`
	P99Ms    float64        `json:"p99_ms"`
	MaxMs    float64        `json:"max_ms"`
}

// Summary condenses the report.
func (r Report) Summary() Summary {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	out := Summary{ElapsedSeconds: r.Elapsed.Seconds(), Dropped: r.Dropped, Ops: map[string]OpSummary{}}
	for op, st := range r.Ops {
		if st.Requests == 0 {
			continue
		}
		lat := slices.Clone(st.Latencies)
		slices.Sort(lat)
		byStatus := map[string]int{}
		for code, n := range st.ByStatus {
			byStatus[fmt.Sprint(code)] = n
		}
		out.Ops[op] = OpSummary{Requests: st.Requests, OK: st.OK, ByStatus: byStatus, NoAnswer: st.Failures,
			P50Ms: ms(percentile(lat, 0.50)), P99Ms: ms(percentile(lat, 0.99)), MaxMs: ms(lat[len(lat)-1])}
	}
	return out
}

// PrintJSON writes the summary as one line starting with SummaryPrefix, so it
// can be found among log lines (a Job's log, for example).
func (r Report) PrintJSON(w io.Writer) error {
	data, err := json.Marshal(r.Summary())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", SummaryPrefix, data)
	return err
}

// SummaryPrefix starts the line PrintJSON writes.
const SummaryPrefix = "loadgen summary: "

func errorSummary(st *OpStats) string {
	if len(st.ByStatus) == 0 && st.Failures == 0 {
		return "0"
	}
	var parts []string
	codes := make([]int, 0, len(st.ByStatus))
	for code := range st.ByStatus {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", st.ByStatus[code], code))
	}
	if st.Failures > 0 {
		parts = append(parts, fmt.Sprintf("%d×no answer", st.Failures))
	}
	return strings.Join(parts, " ")
}
