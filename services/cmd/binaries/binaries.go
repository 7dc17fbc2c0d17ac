// Package binaries describes kshop's commands and the environment variables
// each reads: the mains print it on -help, and hack/configdoc writes
// docs/configuration.md from the same descriptions (package all lists them),
// so the two cannot tell different stories. It imports no service: each main
// hands in its own service's configuration type, so that a command links only
// its own service (the gateway, mail and loadgen are built without cgo, which
// the Kafka client of the other services needs).
package binaries

import (
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/platform/logx"
	"github.com/kshop/kshop/services/platform/pg"
	"github.com/kshop/kshop/services/platform/telemetry"
)

// Binary is one command: what it does, how it is called, and its variables.
type Binary struct {
	Name     string
	Summary  string
	Usage    string
	Sections []config.Section
	// Kubernetes: the binary talks to the API server through client-go,
	// which reads its own variables.
	Kubernetes bool
}

// The standard variables libraries read besides kshop's own: listed with the
// binaries whose settings hold the library's configuration, so that -help
// names every variable a process reads.
const (
	PostgresNote = "The PostgreSQL driver reads the libpq variables (PGPASSWORD, PGSSLROOTCERT, ...) for what a database URL leaves out; the chart passes database passwords in PGPASSWORD."
	OTelNote     = "The OpenTelemetry SDK reads its standard OTEL_* variables (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS, ...) for what these settings leave out."
	KubeNote     = "The Kubernetes client reads KUBECONFIG outside a cluster; in a pod it uses the pod's service account."
)

// LibraryNotes says which standard variables b's libraries read too.
func (b Binary) LibraryNotes() []string {
	var notes []string
	if holds(b.Sections, reflect.TypeFor[pg.Config]()) {
		notes = append(notes, PostgresNote)
	}
	if holds(b.Sections, reflect.TypeFor[telemetry.Config]()) {
		notes = append(notes, OTelNote)
	}
	if b.Kubernetes {
		notes = append(notes, KubeNote)
	}
	return notes
}

// holds reports whether a section's settings contain a field of type want.
func holds(sections []config.Section, want reflect.Type) bool {
	var walk func(t reflect.Type) bool
	walk = func(t reflect.Type) bool {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == want {
			return true
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		for i := range t.NumField() {
			if walk(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	for _, s := range sections {
		if walk(reflect.TypeOf(s.Spec)) {
			return true
		}
	}
	return false
}

// KshopPrefix is where the all-in-one binary's own variables live.
const KshopPrefix = "KSHOP"

// KshopConfig is the all-in-one binary's own configuration; each service it
// runs reads its own prefix as its one-service binary would.
type KshopConfig struct {
	DevKafka DevKafkaConfig   `envconfig:"DEV_KAFKA"`
	Log      logx.Config      `envconfig:"LOG"`
	OTel     telemetry.Config `envconfig:"OTEL"`
}

// DevKafkaConfig places the development broker: an in-process cluster speaking the
// Kafka protocol (franz-go's kfake), so `make run` needs no JVM and no Docker. In
// Kubernetes the real Kafka chart takes its place.
type DevKafkaConfig struct {
	Addr    string `envconfig:"ADDR" default:"127.0.0.1:14092" desc:"Address of the development Kafka broker: one address of this machine and a port (never 0.0.0.0)."`
	DataDir string `envconfig:"DATA_DIR" desc:"Directory where its topics and offsets survive a restart; empty: in memory only, where records every consumer group has read are dropped every 30 s."`
	// SeedTopics off: the broker starts empty and the platform controller
	// must create the topics (the test cluster proves it does).
	SeedTopics bool `envconfig:"SEED_TOPICS" default:"true" desc:"Create the contract's topics at start (as the controller does in Kubernetes)."`
}

// LoadgenPrefix is where loadgen's variables live.
const LoadgenPrefix = "KSHOP_LOADGEN"

// LoadgenConfig is what loadgen takes from the environment when its flags
// leave it out: the password stays out of ps this way.
type LoadgenConfig struct {
	Admin         string `envconfig:"ADMIN" desc:"An address auth makes an admin, to create products with (the -admin flag wins)."`
	AdminPassword string `envconfig:"ADMIN_PASSWORD" desc:"That admin's password, used to register the address if it has no account yet (the -admin-password flag wins)."`
}

func service(name, prefix, what string, spec any) Binary {
	return Binary{
		Name:     name,
		Summary:  fmt.Sprintf("Runs the %s; every setting is an environment variable.", what),
		Usage:    fmt.Sprintf("usage: %s [-help]", name),
		Sections: []config.Section{{Prefix: prefix, Spec: spec}},
	}
}

// Gateway describes the gateway command, whose settings are spec under prefix.
func Gateway(prefix string, spec any) Binary {
	return service("gateway", prefix, "API gateway (docs/gateway.md)", spec)
}

// Auth describes the auth command.
func Auth(prefix string, spec any) Binary {
	b := service("auth", prefix, "auth service (docs/auth.md)", spec)
	b.Usage = "usage: auth [-help] | auth generate-jwks [EdDSA|ES256]   (prints a private key set for a Secret)"
	return b
}

// Product describes the product command.
func Product(prefix string, spec any) Binary {
	return service("product", prefix, "product service (docs/product.md)", spec)
}

// Order describes the order command.
func Order(prefix string, spec any) Binary {
	return service("order", prefix, "order service (docs/order.md)", spec)
}

// Mail describes the mail command.
func Mail(prefix string, spec any) Binary {
	return service("mail", prefix, "mail service (docs/mail.md)", spec)
}

// Controller describes the platform controller's command.
func Controller(prefix string, spec any) Binary {
	b := service("controller", prefix, "platform controller: signing-key rotation and broker topology (docs/kubernetes.md)", spec)
	b.Kubernetes = true
	return b
}

// Kshop describes the all-in-one command: its own settings, then each
// service's, given in services with their titles.
func Kshop(services ...config.Section) Binary {
	return Binary{
		Name: "kshop",
		Summary: "Runs the whole platform in one process for make run: the development Kafka broker and every service, " +
			"each reading its own variables as its one-service binary does.",
		Usage:    "usage: kshop [-help] [devkafka]   (devkafka: the development broker alone)",
		Sections: append([]config.Section{{Title: "The process (KSHOP_*)", Prefix: KshopPrefix, Spec: KshopConfig{}}}, services...),
	}
}

// Loadgen describes the load generator's command.
var Loadgen = Binary{
	Name:     "loadgen",
	Summary:  "Drives kshop through its gateway: the smoke journey, a load run, or a probe of URLs; flags win over these variables (loadgen load -help lists the flags).",
	Usage:    "usage: loadgen smoke|load [flags] | loadgen probe [-timeout 3s] [-settle 1m] URL...",
	Sections: []config.Section{{Prefix: LoadgenPrefix, Spec: LoadgenConfig{}}},
}

// PrintHelp writes b's usage, summary and variables to w.
func (b Binary) PrintHelp(w io.Writer) error {
	if err := config.PrintHelp(w, b.Usage+"\n\n"+b.Summary, b.Sections); err != nil {
		return err
	}
	if notes := b.LibraryNotes(); len(notes) > 0 {
		fmt.Fprintf(w, "\nRead by libraries too:\n")
		for _, n := range notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	return nil
}

// HelpIfAsked prints b's help and exits 0 when args ask for it (-h, -help,
// --help), before any configuration is loaded: help works on a machine with
// nothing set.
func (b Binary) HelpIfAsked(args []string) {
	if !config.HelpRequested(args) {
		return
	}
	if err := b.PrintHelp(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
