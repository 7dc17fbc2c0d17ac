package gateway_test

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGatewayVsDirect sends the same GET to an upstream directly and
// through the gateway (public route: no token, rate limit checked in Redis,
// proxied over a pooled connection), with 16 clients in parallel, and reports
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
		_, _ = rw.Write([]byte(`{"data":{"id":1,"name":"Kopi","price":"25000.00"}}`))
	}
	w.cfg.RateLimits = "products=1000000/s"
	gw := w.start(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(url string) (perSecond float64, p99 time.Duration) {
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
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					latencies[i] = append(latencies[i], time.Since(began))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		all := slices.Concat(latencies...)
		slices.Sort(all)
		return float64(len(all)) / elapsed.Seconds(), all[len(all)*99/100]
	}
	run(w.product.URL + "/products/1") // warm both paths' connection pools
	run(gw.Base + "/products/1")
	b.ResetTimer()
	direct, directP99 := run(w.product.URL + "/products/1")
	through, throughP99 := run(gw.Base + "/products/1")
	b.StopTimer()
	b.ReportMetric(direct, "direct-req/s")
	b.ReportMetric(through, "gateway-req/s")
	b.ReportMetric(through/direct, "ratio")
	b.ReportMetric(float64(directP99.Microseconds())/1000, "direct-p99-ms")
	b.ReportMetric(float64(throughP99.Microseconds())/1000, "gateway-p99-ms")
}
