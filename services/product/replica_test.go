package product_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kshop/kshop/services/platform/testenv"
)

// metric reads one series of the service's /metrics, on its metrics port
// (the name with its labels, as exposed), or -1 when it is absent.
func (s *service) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get(s.metrics.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if value, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

const (
	replicaReads  = `kshop_db_reads_total{pool="replica",reason="replica"}`
	laggingReads  = `kshop_db_reads_total{pool="primary",reason="replica_lagging"}`
	freshReads    = `kshop_db_reads_total{pool="primary",reason="fresh"}`
	downReads     = `kshop_db_reads_total{pool="primary",reason="replica_down"}`
	failedReads   = `kshop_db_reads_total{pool="primary",reason="replica_failed"}`
	replicaUp     = `kshop_db_replica_up`
	replicaLagSec = `kshop_db_replica_lag_seconds`
)

// withReplica starts the service reading from the test server's streaming
// replica, taken alone for the test (the tests pause and stop it).
func withReplica(t testing.TB, maxLag time.Duration) (*service, *testenv.Replica, string) {
	t.Helper()
	cfg := testConfig(t, newCluster(t))
	replica, replicaURL := testenv.RestartableReplica(t, cfg.Database.URL)
	cfg.Database.ReplicaURL = replicaURL
	cfg.Database.ReplicaMaxLag = maxLag
	cfg.Database.ReplicaCheckInterval = 50 * time.Millisecond
	s := start(t, cfg)
	testenv.WaitFor(t, 20*time.Second, "the replica to be up and current", func() bool {
		return s.metric(t, replicaUp) == 1 && s.metric(t, replicaLagSec) == 0
	})
	return s, replica, replicaURL
}

// TestAdminsReadTheirWritesWhileCustomersReadTheReplica stops the replica's
// replay, so it lags: the admin who creates a product reads it back at once
// (the primary), a customer does not see it yet (the replica), until the lag
// passes its bound and the customer's reads go to the primary too; once replay
// resumes, the customer's reads return to the replica.
func TestAdminsReadTheirWritesWhileCustomersReadTheReplica(t *testing.T) {
	const maxLag = 3 * time.Second
	s, _, replicaURL := withReplica(t, maxLag)
	control, err := pgxpool.New(context.Background(), replicaURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = control.Exec(context.Background(), `SELECT pg_wal_replay_resume()`)
		control.Close()
	})
	if _, err := control.Exec(context.Background(), `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}

	p := s.create(t, "written just now", "5", 3)
	path := fmt.Sprint("/products/", p.ID)
	if got := productIn(t, s.Do(t, &admin, http.MethodGet, path, nil).Expect(t, http.StatusOK, "")); got.Name != p.Name {
		t.Fatalf("the admin read %+v", got)
	}
	if list := productsIn(t, s.Do(t, &admin, http.MethodGet, "/products?name=written+just", nil).Expect(t, http.StatusOK, "")); len(list) != 1 {
		t.Fatalf("the admin's search found %d products, want the one just created", len(list))
	}
	replicaBefore := s.metric(t, replicaReads)
	s.Do(t, &customer, http.MethodGet, path, nil).Expect(t, http.StatusNotFound, "product not found")
	s.Do(t, nobody, http.MethodGet, path, nil).Expect(t, http.StatusNotFound, "product not found")
	if s.metric(t, replicaReads) != replicaBefore+2 || s.metric(t, freshReads) < 2 {
		t.Fatalf("customers' reads did not come from the replica, or the admin's not from the primary")
	}

	// The lag is bounded: past maxLag, customers read the primary.
	testenv.WaitFor(t, 20*time.Second, "the measured lag to pass its bound", func() bool { return s.metric(t, replicaLagSec) > maxLag.Seconds() })
	s.Do(t, nobody, http.MethodGet, path, nil).Expect(t, http.StatusOK, "")
	if s.metric(t, laggingReads) < 1 {
		t.Fatal("no read counted as sent to the primary for the replica's lag")
	}

	if _, err := control.Exec(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the replica to catch up", func() bool { return s.metric(t, replicaLagSec) < maxLag.Seconds() })
	replicaBefore = s.metric(t, replicaReads)
	s.Do(t, nobody, http.MethodGet, path, nil).Expect(t, http.StatusOK, "")
	if s.metric(t, replicaReads) != replicaBefore+1 {
		t.Fatal("the caught-up replica serves no reads")
	}
}

// TestReadsSurviveTheReplicaStoppingAndReturn stops the real replica: every
// read still answers (a read that meets the dead replica runs again on the
// primary), the replica is reported down within seconds, and once it is
// started again it serves the reads again.
func TestReadsSurviveTheReplicaStoppingAndReturn(t *testing.T) {
	s, replica, _ := withReplica(t, 2*time.Second)
	p := s.create(t, "always readable", "5", 3)
	path := fmt.Sprint("/products/", p.ID)
	testenv.WaitFor(t, 20*time.Second, "the replica to serve the product", func() bool {
		before := s.metric(t, replicaReads)
		return s.Do(t, nobody, http.MethodGet, path, nil).Status == http.StatusOK && s.metric(t, replicaReads) == before+1
	})

	replica.Stop(t)
	for range 10 {
		s.Do(t, nobody, http.MethodGet, path, nil).Expect(t, http.StatusOK, "")
		s.Do(t, nobody, http.MethodGet, "/products?name=always", nil).Expect(t, http.StatusOK, "")
		time.Sleep(50 * time.Millisecond)
	}
	testenv.WaitFor(t, 5*time.Second, "the replica to be reported down", func() bool { return s.metric(t, replicaUp) == 0 })
	if s.metric(t, downReads)+s.metric(t, failedReads) < 1 {
		t.Fatal("no read counted as sent to the primary for the replica being down")
	}
	s.Do(t, nobody, http.MethodGet, path, nil).Expect(t, http.StatusOK, "")
	resp, err := http.Get(s.Base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz %d without the replica: the primary serves, the service is ready", resp.StatusCode)
	}

	replica.Start(t)
	testenv.WaitFor(t, 20*time.Second, "reads to return to the replica", func() bool {
		before := s.metric(t, replicaReads)
		return s.Do(t, nobody, http.MethodGet, path, nil).Status == http.StatusOK && s.metric(t, replicaReads) == before+1
	})
	if s.metric(t, replicaUp) != 1 {
		t.Fatal("replica serving but not reported up")
	}
}
