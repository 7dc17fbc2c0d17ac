// Command clusterprobe looks at the test cluster's network from inside a pod. It is
// a static binary in an image without a shell (so it runs under the restricted
// Pod Security profile), used by hack/cluster.sh to check the cluster's DNS and by
// hand or in tests to check NetworkPolicies and the cluster's isolation.
//
//	clusterprobe lookup NAME                  resolve NAME with the pod's resolver
//	clusterprobe dial [-timeout D] HOST:PORT  open a TCP connection
//	clusterprobe serve ADDR                   answer HTTP on ADDR until SIGTERM
//
// lookup and dial print one line and exit 0 on success; dial says whether a failed
// connection was refused (something rejected it) or timed out (something dropped it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "lookup":
		err = lookup(os.Stdout, args)
	case "dial":
		err = dial(os.Stdout, args)
	case "serve":
		err = serve(args)
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterprobe:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: clusterprobe lookup NAME | dial [-timeout D] HOST:PORT | serve ADDR")
}

func lookup(w io.Writer, args []string) error {
	if len(args) != 1 {
		return errors.New("lookup takes one name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %s\n", args[0], strings.Join(addrs, " "))
	return nil
}

func dial(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("dial takes one HOST:PORT")
	}
	outcome, err := connect(fs.Arg(0), *timeout)
	fmt.Fprintf(w, "%s %s\n", fs.Arg(0), outcome)
	return err
}

// Outcomes of a connection attempt.
const (
	connected = "connected"
	refused   = "refused"
	timedOut  = "timeout"
	failed    = "failed"
)

// connect opens and closes a TCP connection and names the outcome: a NetworkPolicy
// that rejects shows as refused, a dropped packet as a timeout.
func connect(addr string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	switch {
	case err == nil:
		return connected, conn.Close()
	case errors.Is(err, syscall.ECONNREFUSED):
		return refused, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return timedOut, err
	default:
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			return timedOut, err
		}
		return failed, err
	}
}

func serve(args []string) error {
	if len(args) != 1 {
		return errors.New("serve takes one address, such as :8080")
	}
	srv := &http.Server{
		Addr:              args[0],
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			host, _ := os.Hostname()
			fmt.Fprintf(w, "ok from %s\n", host)
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}
