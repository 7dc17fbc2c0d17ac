// Command loadgen drives kshop through its gateway:
//
//	loadgen smoke   walk the customer journey once and fail on any deviation (make smoke)
//	loadgen load    an open-loop load run with a weighted mix, a progress line and a table
//	loadgen probe   from a pod, which of some URLs answer (exit 1: not even the first)
//
// Both read e-mails (verification codes) from Mailpit's API, as make run starts it,
// and sign in as an admin to create products: an address auth makes an admin,
// with its password, from -admin / KSHOP_LOADGEN_ADMIN and
// KSHOP_LOADGEN_ADMIN_PASSWORD (make smoke and make load take make run's
// development admin; helm test the chart's generated one). There is no default.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/loadgen"
	"github.com/kshop/kshop/services/platform/config"
)

func main() {
	// Only the first argument: after smoke or load, -help is the flags' own.
	binaries.Loadgen.HelpIfAsked(os.Args[1:min(len(os.Args), 2)])
	if len(os.Args) < 2 || (os.Args[1] != "smoke" && os.Args[1] != "load" && os.Args[1] != "probe") {
		fmt.Fprintln(os.Stderr, "usage: loadgen smoke|load [flags] | loadgen probe [-timeout 3s] [-settle 1m] URL...   (loadgen load -h for the flags)")
		os.Exit(2)
	}
	cmd := os.Args[1]
	if cmd == "probe" {
		probe(os.Args[2:])
		return
	}
	flags := flag.NewFlagSet(cmd, flag.ExitOnError)
	gateway := flags.String("gateway", "http://127.0.0.1:8080", "the gateway's URL")
	inbox := flags.String("inbox", "http://127.0.0.1:8025", "Mailpit's URL, where verification codes are read")
	admin := flags.String("admin", "", "an address auth makes an admin (KSHOP_AUTH_ADMIN_EMAILS); default $KSHOP_LOADGEN_ADMIN")
	adminPassword := flags.String("admin-password", "",
		"the admin's password, used to register the address if it has no account yet; default $KSHOP_LOADGEN_ADMIN_PASSWORD (better: a flag shows in ps)")
	reminders := flags.Int("reminders", 3, "smoke: payment reminders an unpaid order gets (KSHOP_ORDER_REMINDER_DELAYS)")
	expiryWithin := flags.Duration("expiry-within", 2*time.Minute, "smoke: how long to wait for an unpaid order to expire")
	rate := flags.Float64("rate", 50, "load: requests per second, held whatever the latency")
	duration := flags.Duration("duration", 30*time.Second, "load: how long to send")
	maxInFlight := flags.Int("max-in-flight", 256, "load: concurrent requests at most; arrivals beyond are dropped and counted")
	mix := flags.String("mix", "browse=50,search=20,order=20,pay=10", "load: operation weights")
	users := flags.Int("users", 5, "load: customers to create first")
	products := flags.Int("products", 20, "load: products to create first")
	stock := flags.Int("stock", 0, "load: each product's starting quantity (0: a million, never sold out)")
	acceptedFile := flags.String("accepted", "", "load: write every order and payment answered 2xx to this file, one JSON object a line")
	summaryJSON := flags.Bool("json", false, "load: also print the outcome as one JSON line (\"loadgen summary: {...}\") for programs")
	_ = flags.Parse(os.Args[2:])

	// From the environment after parsing, so -h never prints the password.
	var env binaries.LoadgenConfig
	if err := config.Load(binaries.LoadgenPrefix, &env); err != nil {
		config.Exit(err)
	}
	if *admin == "" {
		*admin = env.Admin
	}
	if *adminPassword == "" {
		*adminPassword = env.AdminPassword
	}
	if *admin == "" || *adminPassword == "" {
		fmt.Fprintln(os.Stderr, "loadgen: no admin to create products with: set KSHOP_LOADGEN_ADMIN and KSHOP_LOADGEN_ADMIN_PASSWORD "+
			"(or -admin and -admin-password) to an address auth makes an admin; make smoke and make load take make run's")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	mailpit := loadgen.Mailpit{URL: *inbox}
	// In a pod that has just started (helm test, a load Job), the first
	// connections may be refused until the network policies cover the pod.
	if _, err := loadgen.WaitForAnswer(ctx, strings.TrimSuffix(*gateway, "/")+"/healthz", time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: the gateway does not answer:", err)
		os.Exit(1)
	}
	started := time.Now()

	if cmd == "smoke" {
		err := loadgen.Journey(ctx, loadgen.JourneyConfig{
			Gateway: *gateway, Inbox: mailpit, Admin: *admin, AdminPassword: *adminPassword,
			Reminders: *reminders, ExpiryWithin: *expiryWithin,
			Step: func(format string, args ...any) {
				fmt.Printf("smoke %6.1fs  ok  %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
			},
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "smoke %6.1fs  FAILED: %v\n", time.Since(started).Seconds(), err)
			os.Exit(1)
		}
		fmt.Printf("smoke %6.1fs  the whole journey passed\n", time.Since(started).Seconds())
		return
	}

	parsedMix, err := loadgen.ParseMix(*mix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if *rate <= 0 || *maxInFlight < 1 || *users < 1 || *products < 2 {
		fmt.Fprintln(os.Stderr, "loadgen: -rate must be positive, -max-in-flight and -users at least 1, -products at least 2")
		os.Exit(2)
	}
	var accepted func(loadgen.Accepted)
	if *acceptedFile != "" {
		f, err := os.Create(*acceptedFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		defer f.Close()
		var mu sync.Mutex
		enc := json.NewEncoder(f)
		accepted = func(a loadgen.Accepted) {
			mu.Lock()
			defer mu.Unlock()
			if err := enc.Encode(a); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: record an accepted request:", err)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "loadgen: preparing %d users and %d products through %s\n", *users, *products, *gateway)
	report, err := loadgen.Load(ctx, loadgen.LoadConfig{
		Gateway: *gateway, Inbox: mailpit, Admin: *admin, AdminPassword: *adminPassword,
		Rate: *rate, Duration: *duration, MaxInFlight: *maxInFlight, Mix: parsedMix,
		Users: *users, Products: *products, Stock: *stock, Accepted: accepted, Progress: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	report.Print(os.Stdout)
	if *summaryJSON {
		if err := report.PrintJSON(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
}

// probe is `loadgen probe URL...`: from a pod, what that pod may reach. The
// first URL is asked until it answers (within -settle): it proves the pod's
// network works, so that no answer from the others is their policy's doing, not
// a pod whose rules are not written yet. Each other URL is asked once. One line
// per URL: "<url> answered <status>" or "<url> no answer: <error>".
func probe(args []string) {
	flags := flag.NewFlagSet("probe", flag.ExitOnError)
	timeout := flags.Duration("timeout", 3*time.Second, "how long to wait for each answer")
	settle := flags.Duration("settle", time.Minute, "how long the first URL may take to answer")
	_ = flags.Parse(args)
	if flags.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen probe [-timeout 3s] [-settle 1m] URL...")
		os.Exit(2)
	}
	ctx := context.Background()
	first := flags.Arg(0)
	status, err := loadgen.WaitForAnswer(ctx, first, *settle)
	if err != nil {
		fmt.Printf("%s no answer: %v\n", first, err)
		os.Exit(1)
	}
	fmt.Printf("%s answered %d\n", first, status)
	for _, url := range flags.Args()[1:] {
		if status, err := loadgen.Probe(ctx, url, *timeout); err != nil {
			fmt.Printf("%s no answer: %v\n", url, err)
		} else {
			fmt.Printf("%s answered %d\n", url, status)
		}
	}
}
