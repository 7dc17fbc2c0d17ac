package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/kshop/kshop/services/e2e"
	"github.com/kshop/kshop/services/platform/testenv"
)

const (
	openAPIFile     = "../gateway/openapi.json"
	collectionFile  = "../../docs/kshop.postman_collection.json"
	environmentFile = "../../docs/kshop-local.postman_environment.json"
)

// TestEveryRequestOfThePostmanCollection sends the committed Postman
// collection (docs/, generated from the OpenAPI document by hack/apidocs) to
// the platform, request after request as Postman's collection runner would:
// each answer must have the status its script expects, that status must be
// one the document lists for the operation, and the body must match the
// document's schema for it. The scripts are read, not trusted: a line of a
// script this runner does not understand fails the test, so no check of the
// collection goes unperformed here.
func TestEveryRequestOfThePostmanCollection(t *testing.T) {
	// A virtual host of its own: its orders' timers (a minute and more) would
	// otherwise reach the orders of a later test in the process's.
	p := startPlatform(t, e2e.Config{Reminders: []time.Duration{time.Minute}, Expiry: 2 * time.Minute, AMQPURL: testenv.NewAMQPVHost(t)})
	doc := loadOpenAPI(t)
	vars := map[string]string{}
	var env struct {
		Values []struct{ Key, Value string } `json:"values"`
	}
	readJSON(t, environmentFile, &env)
	for _, v := range env.Values {
		vars[v.Key] = v.Value
	}
	// What a `make run` user copies from admin.env, and where this platform listens.
	vars["base_url"], vars["admin_email"], vars["admin_password"] = p.Gateway.Base, p.Admin, p.AdminPassword

	var collection struct {
		Item []struct {
			Name string           `json:"name"`
			Item []collectionItem `json:"item"`
		} `json:"item"`
	}
	readJSON(t, collectionFile, &collection)
	sent, called := 0, map[string]bool{}
	for _, folder := range collection.Item {
		for _, item := range folder.Item {
			called[runItem(t, p, doc, vars, item)] = true
			sent++
		}
	}
	// Every operation of the document was called at least once.
	for path, pathItem := range doc.Paths.Map() {
		for method := range pathItem.Operations() {
			if !called[method+" "+path] {
				t.Errorf("the collection never calls %s %s", method, path)
			}
		}
	}
	t.Logf("%d requests of the collection answered as documented", sent)
}

type collectionItem struct {
	Name  string `json:"name"`
	Event []struct {
		Listen string `json:"listen"`
		Script struct {
			Exec []string `json:"exec"`
		} `json:"script"`
	} `json:"event"`
	Request struct {
		Method string `json:"method"`
		Header []struct{ Key, Value string }
		Body   *struct {
			Raw string `json:"raw"`
		} `json:"body"`
		URL struct {
			Raw string `json:"raw"`
		} `json:"url"`
	} `json:"request"`
}

// The script lines the generator writes, and what they mean here.
var (
	scriptStatus     = regexp.MustCompile(`^pm\.test\("status (\d+)", function \(\) \{ pm\.response\.to\.have\.status\((\d+)\); \}\);$`)
	scriptCapture    = regexp.MustCompile(`^pm\.collectionVariables\.set\("(\w+)", (pm\.response\.json\(\)((?:\.\w+|\[\d+\])+)|pm\.response\.headers\.get\("([\w-]+)"\))(\.match\(/\\d\{6\}/\)\[0\])?\);$`)
	scriptRetry      = regexp.MustCompile(`^if \(pm\.response\.code === (\d+) && tries < (\d+)\) \{$`)
	scriptPause      = regexp.MustCompile(`^setTimeout\(function \(\) \{\}, (\d+)\);$`)
	scriptFreshEmail = regexp.MustCompile(`^pm\.collectionVariables\.set\("(\w+)", "([^"]*)" \+ Date\.now\(\) \+ "([^"]*)"\);$`)
	scriptRetryBooks = []string{ // the retry's bookkeeping, which the loop below does itself
		`const tries = Number(pm.collectionVariables.get("tries") || 0);`,
		`pm.collectionVariables.set("tries", tries + 1);`,
		`pm.execution.setNextRequest(pm.info.requestName);`,
		`} else {`, `pm.collectionVariables.unset("tries");`, `}`,
		`pm.test("the e-mail has arrived", function () { pm.expect(pm.response.json().messages.length).to.be.above(0); });`,
	}
	variable = regexp.MustCompile(`\{\{(\w+)\}\}`)
)

type itemScript struct {
	status                  int
	captures                [][4]string // variable, JSON path, header, digits
	retryStatus, retryTimes int
	pause                   time.Duration
}

func readScript(t *testing.T, vars map[string]string, item collectionItem) itemScript {
	t.Helper()
	var s itemScript
	for _, event := range item.Event {
		for _, line := range event.Script.Exec {
			line = strings.TrimSpace(line)
			switch m := []string(nil); {
			case event.Listen == "prerequest" && scriptFreshEmail.MatchString(line):
				m = scriptFreshEmail.FindStringSubmatch(line)
				vars[m[1]] = m[2] + strconv.FormatInt(time.Now().UnixNano(), 10) + m[3]
			case event.Listen != "test":
				t.Fatalf("%q: a %s script line this runner does not understand: %s", item.Name, event.Listen, line)
			case strings.HasPrefix(line, "//") || slices.Contains(scriptRetryBooks, line):
			case scriptStatus.MatchString(line):
				m = scriptStatus.FindStringSubmatch(line)
				s.status, _ = strconv.Atoi(m[2])
			case scriptCapture.MatchString(line):
				m = scriptCapture.FindStringSubmatch(line)
				s.captures = append(s.captures, [4]string{m[1], m[3], m[4], m[5]})
			case scriptRetry.MatchString(line):
				m = scriptRetry.FindStringSubmatch(line)
				s.retryStatus, _ = strconv.Atoi(m[1])
				s.retryTimes, _ = strconv.Atoi(m[2])
			case scriptPause.MatchString(line):
				m = scriptPause.FindStringSubmatch(line)
				ms, _ := strconv.Atoi(m[1])
				s.pause = time.Duration(ms) * time.Millisecond
			default:
				t.Fatalf("%q: a test script line this runner does not understand: %s", item.Name, line)
			}
		}
	}
	if s.status == 0 {
		t.Fatalf("%q: its script checks no status", item.Name)
	}
	return s
}

// runItem sends one request of the collection (again while its script says
// to retry) and checks the answer; it returns the operation called (method
// and path template), empty for a read of the inbox.
func runItem(t *testing.T, p *e2e.Platform, doc *openapi3.T, vars map[string]string, item collectionItem) string {
	t.Helper()
	script := readScript(t, vars, item)
	fill := func(s string) string {
		return variable.ReplaceAllStringFunc(s, func(v string) string {
			value, ok := vars[v[2:len(v)-2]]
			if !ok {
				t.Fatalf("%q uses %s, which no earlier request set", item.Name, v)
			}
			return value
		})
	}
	var (
		status int
		header http.Header
		body   []byte
		req    *http.Request
	)
	for try := 0; ; try++ {
		if strings.HasPrefix(item.Request.URL.Raw, "{{mailpit_url}}") {
			status, header, body = 200, http.Header{}, inbox(t, p, item.Name, fill(item.Request.URL.Raw))
			break
		}
		var reqBody io.Reader
		if item.Request.Body != nil {
			reqBody = strings.NewReader(fill(item.Request.Body.Raw))
		}
		var err error
		req, err = http.NewRequest(item.Request.Method, fill(item.Request.URL.Raw), reqBody)
		if err != nil {
			t.Fatalf("%q: %v", item.Name, err)
		}
		for _, h := range item.Request.Header {
			req.Header.Set(h.Key, fill(h.Value))
		}
		resp, err := p.Gateway.HTTP.Do(req)
		if err != nil {
			t.Fatalf("%q: %v", item.Name, err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		status, header = resp.StatusCode, resp.Header
		if script.retryTimes > 0 && status == script.retryStatus && try < script.retryTimes {
			time.Sleep(script.pause)
			continue
		}
		break
	}
	if status != script.status {
		t.Fatalf("%q: %s %s answered %d %s, the collection expects %d", item.Name, item.Request.Method, item.Request.URL.Raw, status, body, script.status)
	}
	operation := ""
	if req != nil {
		operation = checkDocumented(t, doc, item.Name, req, status, header, body)
	}
	for _, c := range script.captures {
		var value string
		if c[2] != "" {
			value = header.Get(c[2])
		} else {
			value = jsonAt(t, item.Name, body, c[1])
		}
		if c[3] != "" {
			value = regexp.MustCompile(`\d{6}`).FindString(value)
		}
		if value == "" {
			t.Fatalf("%q: nothing to keep in %s from %s", item.Name, c[0], body)
		}
		vars[c[0]] = value
	}
	return operation
}

// inbox stands in for the collection's reads of Mailpit (the mail catcher of
// `make run`): the newest e-mail to the address whose subject has the text,
// from the test's SMTP server, in the shape of Mailpit's search answer.
func inbox(t *testing.T, p *e2e.Platform, name, raw string) []byte {
	t.Helper()
	u, err := url.Parse(strings.TrimPrefix(raw, "{{mailpit_url}}"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^to:(\S+) subject:"([^"]+)"$`).FindStringSubmatch(u.Query().Get("query"))
	if m == nil {
		t.Fatalf("%q: a Mailpit query this runner does not understand: %s", name, u.Query().Get("query"))
	}
	var subject string
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("an e-mail to %s about %q", m[1], m[2]), func() bool {
		for _, mail := range slices.Backward(p.SMTP.To(m[1])) {
			if strings.Contains(mail.Subject, m[2]) {
				subject = mail.Subject
				return true
			}
		}
		return false
	})
	out, _ := json.Marshal(map[string]any{"messages": []map[string]string{{"Subject": subject}}})
	return out
}

// jsonAt reads .data.id or .messages[0].Subject from a JSON body.
func jsonAt(t *testing.T, name string, body []byte, path string) string {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%q: %v in %s", name, err, body)
	}
	for _, part := range regexp.MustCompile(`\.\w+|\[\d+\]`).FindAllString(path, -1) {
		switch node := v.(type) {
		case map[string]any:
			v = node[strings.TrimPrefix(part, ".")]
		case []any:
			i, _ := strconv.Atoi(strings.Trim(part, "[]"))
			if i >= len(node) {
				t.Fatalf("%q: no %s in %s", name, path, body)
			}
			v = node[i]
		default:
			t.Fatalf("%q: no %s in %s", name, path, body)
		}
	}
	return fmt.Sprint(v)
}

// checkDocumented finds the request's operation in the OpenAPI document and
// validates the answer against it: a documented status, and a body of the
// documented schema. It returns the operation's method and path template.
func checkDocumented(t *testing.T, doc *openapi3.T, name string, req *http.Request, status int, header http.Header, body []byte) string {
	t.Helper()
	path, params := matchPath(doc, req.URL.Path)
	if path == "" {
		t.Fatalf("%q: %s is no path of the OpenAPI document", name, req.URL.Path)
	}
	item := doc.Paths.Value(path)
	op := item.GetOperation(req.Method)
	if op == nil {
		t.Fatalf("%q: the document has no %s %s", name, req.Method, path)
	}
	route := &routers.Route{Spec: doc, Path: path, PathItem: item, Method: req.Method, Operation: op}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%q: %s %s answered %d, not as the OpenAPI document says: %v\n%s", name, req.Method, req.URL.Path, status, err, body)
	}
	return req.Method + " " + path
}

// matchPath finds the document's path template of a concrete path.
func matchPath(doc *openapi3.T, concrete string) (string, map[string]string) {
	parts := strings.Split(concrete, "/")
	for template := range doc.Paths.Map() {
		tparts := strings.Split(template, "/")
		if len(tparts) != len(parts) {
			continue
		}
		params := map[string]string{}
		for i := range tparts {
			if strings.HasPrefix(tparts[i], "{") {
				params[strings.Trim(tparts[i], "{}")] = parts[i]
			} else if tparts[i] != parts[i] {
				params = nil
				break
			}
		}
		// A literal path (/orders/pay) wins over a template (/orders/{id}).
		if params != nil && (len(params) == 0 || doc.Paths.Value(strings.Join(parts, "/")) == nil) {
			return template, params
		}
	}
	return "", nil
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return doc
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestTheOpenAPIDocumentHasEveryRoute compares the document with the routes
// the services and the gateway really serve: every public route of a service,
// as the gateway exposes it, is a documented operation, and every documented
// operation is served.
func TestTheOpenAPIDocumentHasEveryRoute(t *testing.T) {
	p := startPlatform(t, e2e.Config{Reminders: []time.Duration{time.Minute}, Expiry: 2 * time.Minute})
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	// Each service's own operational routes are for its probes and
	// Prometheus, not reachable through the gateway; the gateway's
	// /metrics is for Prometheus too (docs/observability.md).
	operational := map[string]bool{"/healthz": true, "/readyz": true, "/health": true, "/metrics": true}
	prefix := map[string]string{"auth": "/auth", "product": "", "order": "", "gateway": ""}
	served := map[string]bool{}
	for service, routes := range p.Routes {
		if service == "mail" {
			for _, r := range routes {
				if !operational[r.Path] {
					t.Errorf("the mail service serves %s %s, which the gateway does not forward", r.Method, r.Path)
				}
			}
			continue
		}
		for _, r := range routes {
			forwarded := service == "gateway" && regexp.MustCompile(`^/(auth|products|orders)(/|$)`).MatchString(r.Path)
			if forwarded || service != "gateway" && operational[r.Path] || service == "gateway" && r.Path == "/metrics" {
				continue // the services' routes, which the gateway forwards, are checked as the services serve them; the services' probes
			}
			path := prefix[service] + regexp.MustCompile(`:(\w+)`).ReplaceAllString(r.Path, "{$1}")
			served[r.Method+" "+path] = true
			if !documented[r.Method+" "+path] {
				t.Errorf("%s serves %s %s, which the OpenAPI document lacks", service, r.Method, path)
			}
		}
	}
	for op := range documented {
		if !served[op] {
			t.Errorf("the OpenAPI document has %s, which nothing serves", op)
		}
	}
}
