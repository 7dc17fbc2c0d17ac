package boundaries

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/kshop/kshop/"

// layer names what a package of the module is, which decides what it may import.
type layer struct {
	kind    string // service, platform, events, money, tool, entry
	service string // for kind "service": which one
}

// services are the deployable services; each owns its package tree.
var services = []string{"auth", "gateway", "product", "order", "mail", "controller"}

func layerOf(path string) layer {
	rel := strings.TrimPrefix(path, module)
	parts := strings.Split(rel, "/")
	if parts[0] != "services" || len(parts) < 2 {
		return layer{kind: "entry"} // charts' tests, hack's programs and tests: outside the layers
	}
	switch top := parts[1]; {
	case top == "events":
		return layer{kind: "events"}
	case top == "money":
		return layer{kind: "money"}
	case top == "platform":
		return layer{kind: "platform"}
	case top == "cmd", top == "e2e", top == "boundaries":
		return layer{kind: "entry"} // mains and the end-to-end suite wire everything together
	case top == "loadgen", top == "chaos":
		return layer{kind: "tool"}
	default:
		for _, s := range services {
			if top == s {
				return layer{kind: "service", service: s}
			}
		}
		return layer{kind: "unknown"}
	}
}

// allowed reports whether from may import to, and why not.
func allowed(from, to layer) (bool, string) {
	switch from.kind {
	case "entry":
		return true, ""
	case "service":
		switch {
		case to.kind == "service" && to.service != from.service:
			return false, "a service never imports another service: they talk over HTTP, Kafka and RabbitMQ"
		case to.kind == "tool", to.kind == "entry":
			return false, "a service imports only itself, services/events, services/money and services/platform"
		}
	case "tool":
		if to.kind == "service" || to.kind == "entry" {
			return false, "the load and chaos tools reach services over the network, as clients do"
		}
	case "platform":
		if to.kind != "platform" {
			return false, "platform is the foundation: it imports no service, tool, services/events or services/money"
		}
	case "events":
		if to.kind != "events" && to.kind != "money" {
			return false, "services/events is the message contract: it imports nothing of the module but services/money, the amounts its payloads carry"
		}
	case "money":
		if to.kind != "money" {
			return false, "services/money is an amount and nothing else: it imports nothing of the module"
		}
	case "unknown":
		return false, "a package under services/ that belongs to no layer: add it to the layers of this test and of docs/architecture.md"
	}
	return true, ""
}

type listed struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// packages lists every package of the module with its imports, test files' included.
func packages(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", "-tags", "cluster", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list: %v\n%s", err, exit.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var all []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	if len(all) < 20 {
		t.Fatalf("go list found only %d packages: is the test running in the repository?", len(all))
	}
	return all
}

func violations(all []listed) []string {
	var found []string
	for _, p := range all {
		from := layerOf(p.ImportPath)
		seen := map[string]bool{}
		for _, imp := range append(append(append([]string{}, p.Imports...), p.TestImports...), p.XTestImports...) {
			if !strings.HasPrefix(imp, module) || imp == p.ImportPath || seen[imp] {
				continue
			}
			seen[imp] = true
			if ok, why := allowed(from, layerOf(imp)); !ok {
				found = append(found, fmt.Sprintf("%s imports %s: %s", strings.TrimPrefix(p.ImportPath, module), strings.TrimPrefix(imp, module), why))
			}
		}
		if from.kind == "unknown" {
			found = append(found, fmt.Sprintf("%s: %s", strings.TrimPrefix(p.ImportPath, module), "belongs to no layer"))
		}
	}
	sort.Strings(found)
	return found
}

func TestImportsFollowTheLayers(t *testing.T) {
	if found := violations(packages(t)); len(found) > 0 {
		t.Fatalf("imports across the layers of docs/architecture.md:\n  %s", strings.Join(found, "\n  "))
	}
}

// The rules themselves, on made-up packages: each forbidden arrow is caught.
func TestForbiddenArrowsAreCaught(t *testing.T) {
	p := func(rel string, imports ...string) listed {
		full := make([]string, len(imports))
		for i, imp := range imports {
			full[i] = module + imp
		}
		return listed{ImportPath: module + rel, Imports: full}
	}
	for _, c := range []struct {
		pkg  listed
		want string
	}{
		{p("services/order", "services/product"), "services/order imports services/product"},
		{p("services/order/internal/x", "services/mail"), "services/order/internal/x imports services/mail"},
		{p("services/platform/outbox", "services/events"), "services/platform/outbox imports services/events"},
		{p("services/platform/pg", "services/auth"), "services/platform/pg imports services/auth"},
		{p("services/events", "services/platform/pg"), "services/events imports services/platform/pg"},
		{p("services/events", "services/order"), "services/events imports services/order"},
		{p("services/money", "services/events"), "services/money imports services/events"},
		{p("services/platform/pg", "services/money"), "services/platform/pg imports services/money"},
		{p("services/loadgen", "services/gateway"), "services/loadgen imports services/gateway"},
		{p("services/payments"), "services/payments: belongs to no layer"},
	} {
		found := violations([]listed{c.pkg})
		if len(found) != 1 || !strings.HasPrefix(found[0], c.want) {
			t.Errorf("%s: found %q, want one violation starting %q", c.pkg.ImportPath, found, c.want)
		}
	}
	for _, ok := range []listed{
		p("services/order", "services/events", "services/money", "services/platform/outbox", "services/order/migrations"),
		p("services/events", "services/money"),
		p("services/cmd/kshop", "services/auth", "services/order", "services/platform/config"),
		p("services/e2e", "services/gateway", "services/loadgen"),
		p("services/loadgen", "services/platform/httpx"),
		p("services/platform/outbox", "services/platform/pg"),
	} {
		if found := violations([]listed{ok}); len(found) > 0 {
			t.Errorf("%s: allowed imports reported: %q", ok.ImportPath, found)
		}
	}
}
