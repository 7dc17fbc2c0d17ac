package gateway_test

import (
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// product1 is the body every benchmarked upstream answers with.
const product1 = `{"data":{"id":1,"name":"Kopi","price":"25000.00"}}`

// BenchmarkGatewayVsDirect sends the same GET to an upstream directly and
// through the gateway (public route: no token, rate limit admitted from the
// replica's lease of Redis tokens, proxied over a pooled connection), with 16 clients in parallel, and reports
// requests/s and p99 of both and their ratio. Client, gateway, Redis and
// upstream share the machine's cores, so against an upstream that answers at
// once the ratio is the gateway's whole cost in CPU (three network hops instead
// of one); against an upstream that works 1 ms it is the cost a caller sees.
func BenchmarkGatewayVsDirect(b *testing.B) {
	for _, upstreamWork := range []time.Duration{0, time.Millisecond} {
		b.Run("upstream="+upstreamWork.String(), func(b *testing.B) { benchmarkGatewayVsDirect(b, upstreamWork) })
	}
}

// benchmarkGatewayVsDirect runs the comparison against an upstream that takes
// upstreamWork per request (0: answers at once; 1ms: a typical indexed query).
func benchmarkGatewayVsDirect(b *testing.B, upstreamWork time.Duration) {
	w := newWorld(b)
	w.product.answer = func(rw http.ResponseWriter, _ *http.Request) {
		if upstreamWork > 0 {
			time.Sleep(upstreamWork)
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(product1))
	}
	w.cfg.RateLimits = "products=1000000/s"
	gw := w.start(b)
	load := newLoadClient()
	load.run(b, w.product.URL+"/products/1") // warm both paths' connection pools
	load.run(b, gw.Base+"/products/1")
	b.ResetTimer()
	direct, directP99 := load.run(b, w.product.URL+"/products/1")
	through, throughP99 := load.run(b, gw.Base+"/products/1")
	b.StopTimer()
	b.ReportMetric(direct, "direct-req/s")
	b.ReportMetric(through, "gateway-req/s")
	b.ReportMetric(through/direct, "ratio")
	b.ReportMetric(milliseconds(directP99), "direct-p99-ms")
	b.ReportMetric(milliseconds(throughP99), "gateway-p99-ms")
}

// BenchmarkGatewayAtFixedRate sends GETs at a fixed 800 a second for 15 s,
// directly to an upstream that answers at once and then through the gateway,
// and reports p50, p99 and max of both and what the gateway adds to the p99.
// Open loop: each request leaves at its scheduled time whatever the ones
// before it do, and its latency counts from that time, so a stall shows in
// the figures instead of slowing the sender down (coordinated omission).
// One run whatever b.N.
func BenchmarkGatewayAtFixedRate(b *testing.B) {
	const rate, duration = 800, 15 * time.Second
	w := newWorld(b)
	w.product.answer = func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(product1))
	}
	w.cfg.RateLimits = "products=1000000/s"
	gw := w.start(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	// A second of each first, to fill the connection pools.
	atFixedRate(b, client, w.product.URL+"/products/1", rate, time.Second)
	atFixedRate(b, client, gw.Base+"/products/1", rate, time.Second)
	b.ResetTimer()
	direct := atFixedRate(b, client, w.product.URL+"/products/1", rate, duration)
	through := atFixedRate(b, client, gw.Base+"/products/1", rate, duration)
	b.StopTimer()
	for _, side := range []struct {
		name      string
		latencies []time.Duration
	}{{"direct", direct}, {"gateway", through}} {
		b.ReportMetric(milliseconds(side.latencies[len(side.latencies)/2]), side.name+"-p50-ms")
		b.ReportMetric(milliseconds(side.latencies[len(side.latencies)*99/100]), side.name+"-p99-ms")
		b.ReportMetric(milliseconds(side.latencies[len(side.latencies)-1]), side.name+"-max-ms")
	}
	b.ReportMetric(milliseconds(through[len(through)*99/100]-direct[len(direct)*99/100]), "added-p99-ms")
	b.ReportMetric(rate, "req/s")
}

// atFixedRate GETs url rate times a second for duration and returns the
// latencies, sorted, each counted from the request's scheduled start.
func atFixedRate(b *testing.B, client *http.Client, url string, rate int, duration time.Duration) []time.Duration {
	total := int(duration.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	latencies := make([]time.Duration, total)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		scheduled := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(scheduled))
		wg.Add(1)
		go func() {
			defer wg.Done()
			getOK(b, client, url)
			latencies[i] = time.Since(scheduled)
		}()
	}
	wg.Wait()
	slices.Sort(latencies)
	return latencies
}

// BenchmarkRateLimitLeases sends b.N GETs of one client through one gateway
// (16 in flight) under three limits of the products group and reports how
// many round trips to Redis the rate limit made per 1000 requests (before
// leases: 1000), the share admitted and requests/s. 1000000/s admits
// everything (leases of 64); 2000/s admits part (leases of 64 until the
// bucket is drained, then what it refills); 100/s refuses nearly everything,
// and a refusal is remembered until Redis has a token again.
func BenchmarkRateLimitLeases(b *testing.B) {
	for _, limit := range []string{"1000000/s", "2000/s", "100/s"} {
		b.Run("limit="+limit, func(b *testing.B) {
			w := newWorld(b)
			w.product.answer = func(rw http.ResponseWriter, _ *http.Request) {
				rw.Header().Set("Content-Type", "application/json")
				_, _ = rw.Write([]byte(product1))
			}
			w.cfg.RateLimits = "products=" + limit
			gw := connectingFrom(w.start(b), randomAddress(127)) // a fresh bucket
			leases := func() float64 {
				return counterValue(b, w.registry, "kshop_gateway_rate_limit_leases_total", map[string]string{"group": "products"})
			}
			const workers = 16
			var next, admitted atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			before, start := leases(), time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						resp, err := gw.HTTP.Get(gw.Base + "/products/1")
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						switch resp.StatusCode {
						case http.StatusOK:
							admitted.Add(1)
						case http.StatusTooManyRequests:
						default:
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(1000*(leases()-before)/float64(b.N), "redis-trips/1000req")
			b.ReportMetric(100*float64(admitted.Load())/float64(b.N), "admitted-%")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}

// BenchmarkBareGin is the ceiling of the gateway row: a gin engine with no
// middleware and one handler answering the same body, on loopback, measured
// with the same client and concurrency. Nothing written in gin can serve more
// requests per second than this on the same machine.
func BenchmarkBareGin(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.GET("/products/:id", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", []byte(product1))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	server := &http.Server{Handler: engine, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(ln) }()
	b.Cleanup(func() { _ = server.Close() })
	url := "http://" + ln.Addr().String() + "/products/1"
	load := newLoadClient()
	load.run(b, url)
	b.ResetTimer()
	perSecond, p99 := load.run(b, url)
	b.StopTimer()
	b.ReportMetric(perSecond, "req/s")
	b.ReportMetric(milliseconds(p99), "p99-ms")
}

// loadClient sends b.N GETs from 16 goroutines over a shared pool of
// keep-alive connections: the one client of every HTTP throughput row, so the
// rows compare servers, not clients.
type loadClient struct{ http *http.Client }

func newLoadClient() loadClient {
	return loadClient{http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (c loadClient) run(b *testing.B, url string) (perSecond float64, p99 time.Duration) {
	const workers = 16
	var next atomic.Int64
	latencies := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				began := time.Now()
				if !getOK(b, c.http, url) {
					return
				}
				latencies[i] = append(latencies[i], time.Since(began))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(latencies...)
	if len(all) == 0 {
		b.Fatalf("GET %s: no request succeeded", url)
	}
	slices.Sort(all)
	return float64(len(all)) / elapsed.Seconds(), all[len(all)*99/100]
}

// getOK GETs url, reads the whole answer and reports whether it was a 200;
// anything else fails the benchmark.
func getOK(b *testing.B, client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("GET %s: status %d", url, resp.StatusCode)
		return false
	}
	return true
}

func milliseconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
