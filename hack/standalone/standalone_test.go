package standalone

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// root is the repository, seen from this package's directory (go test runs
// there).
const root = "../.."

// The contract lived in a file outside the repository before docs/api.md; a
// citation of that file is a pointer no reader of the repository can follow.
// The name is assembled so that this file does not cite it itself.
var outsideContract = "SPEC" + ".md"

// contractDoc is the wire contract every route must appear in.
const contractDoc = "docs/api.md"

func TestNoFileCitesTheContractThatLivedOutsideTheRepository(t *testing.T) {
	files := repositoryFiles(t)
	for _, problem := range citations(files, outsideContract) {
		t.Error(problem)
	}
}

// A compiled program in the repository is tens of megabytes in every clone
// for ever, and nobody can review it: build outputs are made, never kept.
func TestNoCompiledProgramIsInTheRepository(t *testing.T) {
	for path, content := range repositoryFiles(t) {
		if compiledProgram(content) {
			t.Errorf("%s is a compiled program: delete it (git rm --cached %s) and build it with go build -o bin/ instead", path, path)
		}
	}
}

// compiledProgram tells ELF executables (Linux builds, test binaries included)
// apart from the text and images the repository holds.
func compiledProgram(content []byte) bool {
	return bytes.HasPrefix(content, []byte("\x7fELF"))
}

func TestMarkdownLinksStayInsideTheRepositoryAndResolve(t *testing.T) {
	files := repositoryFiles(t)
	checked := 0
	for path := range files {
		if strings.HasSuffix(path, ".md") {
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("found %d Markdown files; the repository has more: is the file list broken?", checked)
	}
	for _, problem := range markdownProblems(files) {
		t.Error(problem)
	}
}

func TestTheContractListsEveryRouteTheGatewayServes(t *testing.T) {
	doc := readRepoFile(t, contractDoc)
	spec := readRepoFile(t, "services/gateway/openapi.json")
	gateway := readRepoFile(t, "services/gateway/gateway.go")

	fromSpec, err := openAPIRoutes(spec)
	if err != nil {
		t.Fatal(err)
	}
	fromCode, err := gatewayRoutes(gateway)
	if err != nil {
		t.Fatal(err)
	}
	// Both sources are parsed, not trusted to be non-empty: a parser that
	// finds nothing would pass every check below.
	if len(fromSpec) < 10 || len(fromCode) < 5 {
		t.Fatalf("found %d routes in openapi.json and %d in gateway.go; both hold more", len(fromSpec), len(fromCode))
	}
	for _, problem := range undocumented(string(doc), append(fromSpec, fromCode...)) {
		t.Errorf("%s: %s", contractDoc, problem)
	}
}

// The checks themselves must catch what they are for; each case here is one
// they missed or could miss.

func TestCitationsAreFound(t *testing.T) {
	files := map[string][]byte{
		"a.go":     []byte("package a\n\n// Limits of the contract (" + outsideContract + ", Products).\n"),
		"b.md":     []byte("fine\n"),
		"c.bin":    append([]byte("\x00binary "), outsideContract...),
		"d/e.yaml": []byte("# as " + outsideContract + " says\nx: 1\n"),
	}
	got := citations(files, outsideContract)
	want := []string{"a.go:3 cites " + outsideContract, "d/e.yaml:1 cites " + outsideContract}
	if !slices.Equal(got, want) {
		t.Errorf("citations = %q, want %q", got, want)
	}
}

func TestMarkdownProblemsAreFound(t *testing.T) {
	files := map[string][]byte{
		"README.md": []byte("[ok](docs/a.md#the-first-part) [top](#kshop)\n# kshop\n"),
		"docs/a.md": []byte(strings.Join([]string{
			"# A",
			"## The first part",
			"## `If-Match` on replacement (428)",
			"The contract is [SPEC](../../outside/x.md); [b](b.md#nowhere), [gone](missing.md),",
			"[abs](/etc/passwd), [web](https://example.com/../..), [mail](mailto:a@b.c),",
			"[self](#if-match-on-replacement-428) [bad](#no-such-part) [up](../README.md#kshop)",
			"```",
			"[in code](../../../outside.md)",
			"```",
			"`[in a span](../../x.md)` [ref]: ../../../y.md",
			"[def]: ../../elsewhere.md",
		}, "\n")),
		"docs/b.md": []byte("# B\n"),
	}
	got := markdownProblems(files)
	want := []string{
		`docs/a.md:4 links to "../../outside/x.md", which leaves the repository`,
		`docs/a.md:4 links to "b.md#nowhere": docs/b.md has no section "nowhere" (it has: b)`,
		`docs/a.md:4 links to "missing.md", which does not exist`,
		`docs/a.md:5 links to "/etc/passwd": an absolute path; link relative to the file`,
		`docs/a.md:6 links to "#no-such-part": docs/a.md has no section "no-such-part" (it has: a, the-first-part, if-match-on-replacement-428)`,
		`docs/a.md:11 links to "../../elsewhere.md", which leaves the repository`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAnchorsAreGitHubs(t *testing.T) {
	for heading, want := range map[string]string{
		"Limits (429 with `Retry-After`)":                 "limits-429-with-retry-after",
		"The gateway's own routes":                        "the-gateways-own-routes",
		"Who registered: squatting":                       "who-registered-squatting",
		"`GET /products/:id`":                             "get-productsid",
		"Managed infrastructure: TLS and credentials":     "managed-infrastructure-tls-and-credentials",
		"What `make test` proves on it":                   "what-make-test-proves-on-it",
		"Replacing a product at the [version](x.md) read": "replacing-a-product-at-the-version-read",
		"**Bold** and _under_score":                       "bold-and-_under_score",
	} {
		if got := anchor(heading); got != want {
			t.Errorf("anchor(%q) = %q, want %q", heading, got, want)
		}
	}
	doc := "# A\n## Part\n## Part\n```\n# not a heading\n```\n## Part\n"
	if got, want := anchors(doc), []string{"a", "part", "part-1", "part-2"}; !slices.Equal(got, want) {
		t.Errorf("anchors = %q, want %q", got, want)
	}
}

func TestUndocumentedRoutesAreFound(t *testing.T) {
	spec := []byte(`{"paths":{"/products/{id}":{"parameters":[],"get":{},"put":{}},"/orders/pay":{"post":{}}}}`)
	fromSpec, err := openAPIRoutes(spec)
	if err != nil {
		t.Fatal(err)
	}
	code := []byte(`package gateway
func New() {
	engine.GET("/openapi.json", serve)
	engine.Any("/auth/*path", public, forward(auth))
	engine.Any("/orders", user, forward(orders))
	engine.DELETE("/products/:id", admin, forward(products))
	engine.GET(path, notALiteral)
}`)
	fromCode, err := gatewayRoutes(code)
	if err != nil {
		t.Fatal(err)
	}
	doc := "### `GET /products/:id`\n| `POST /orders/pay` | ... |\n`GET /openapi.json`\n### `GET /orders`\n"
	got := undocumented(doc, append(fromSpec, fromCode...))
	want := []string{
		"`PUT /products/:id` (openapi.json) is not documented",
		"no route under `/auth/` (gateway.go) is documented",
		"`DELETE /products/:id` (gateway.go) is not documented",
	}
	if !slices.Equal(got, want) {
		t.Errorf("undocumented =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// repositoryFiles reads every file git tracks or would track (untracked but
// not ignored), so a new file is checked before it is committed. Without git
// (an exported tree) it walks the directory instead.
func repositoryFiles(t *testing.T) map[string][]byte {
	t.Helper()
	var paths []string
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err == nil {
		for _, p := range strings.Split(string(out), "\x00") {
			if p != "" {
				paths = append(paths, p)
			}
		}
	} else {
		t.Logf("git ls-files: %v; walking the tree instead", err)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == ".git" {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() {
				rel, err := filepath.Rel(root, path)
				if err != nil {
					return err
				}
				paths = append(paths, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	files := make(map[string][]byte, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			var pathErr *fs.PathError
			if errors.As(err, &pathErr) && isDirectory(filepath.Join(root, p)) {
				continue // a submodule or nested repository
			}
			t.Fatal(err)
		}
		files[p] = data
	}
	if len(files) < 100 {
		t.Fatalf("found %d files in the repository; it holds more: is the file list broken?", len(files))
	}
	return files
}

func isDirectory(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

func readRepoFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// binary reports a file that is not text: one with a NUL byte early on, as git
// itself decides.
func binary(data []byte) bool { return bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 }

// citations lists file:line of every text file that names needle.
func citations(files map[string][]byte, needle string) []string {
	var out []string
	for _, path := range sortedKeys(files) {
		data := files[path]
		if binary(data) || !bytes.Contains(data, []byte(needle)) {
			continue
		}
		for i, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, needle) {
				out = append(out, fmt.Sprintf("%s:%d cites %s", path, i+1, needle))
			}
		}
	}
	return out
}

var (
	inlineLink = regexp.MustCompile(`\]\(\s*<?([^()<>\s]+)>?(?:\s+"[^"]*")?\s*\)`)
	linkDef    = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	scheme     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	atxHeading = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
)

// markdownProblems checks every link of every Markdown file: a relative target
// must stay inside the repository and exist, and a #section must be a heading
// of the file it points into. Links to other sites are not fetched.
func markdownProblems(files map[string][]byte) []string {
	var out []string
	for _, path := range sortedKeys(files) {
		if !strings.HasSuffix(path, ".md") {
			continue
		}
		for _, link := range markdownLinks(string(files[path])) {
			if problem := linkProblem(files, path, link.target); problem != "" {
				out = append(out, fmt.Sprintf("%s:%d links to %q%s", path, link.line, link.target, problem))
			}
		}
	}
	return out
}

type mdLink struct {
	line   int
	target string
}

// markdownLinks finds inline links and link definitions outside code blocks
// and code spans.
func markdownLinks(doc string) []mdLink {
	var out []mdLink
	fenced := false
	for i, line := range strings.Split(doc, "\n") {
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		// A definition starts its line; a line that starts with a code span
		// holds none.
		if m := linkDef.FindStringSubmatch(line); m != nil {
			out = append(out, mdLink{i + 1, m[1]})
		}
		for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			out = append(out, mdLink{i + 1, m[1]})
		}
	}
	return out
}

// linkProblem says what is wrong with target, linked from the repository file
// from, or "" when nothing is.
func linkProblem(files map[string][]byte, from, target string) string {
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return "" // another site, or mailto:
	}
	if strings.HasPrefix(target, "/") {
		return ": an absolute path; link relative to the file"
	}
	pathPart, fragment, _ := strings.Cut(target, "#")
	into := from
	if pathPart != "" {
		unescaped, err := url.PathUnescape(pathPart)
		if err != nil {
			return ": not a valid path"
		}
		joined := filepath.ToSlash(filepath.Join(filepath.Dir(filepath.FromSlash(from)), filepath.FromSlash(unescaped)))
		if joined == ".." || strings.HasPrefix(joined, "../") {
			return ", which leaves the repository"
		}
		into = strings.TrimSuffix(joined, "/")
		if _, ok := files[into]; !ok && !hasFileUnder(files, into) {
			return ", which does not exist"
		}
	}
	if fragment == "" || !strings.HasSuffix(into, ".md") {
		return ""
	}
	known := anchors(string(files[into]))
	if !slices.Contains(known, fragment) {
		return fmt.Sprintf(": %s has no section %q (it has: %s)", into, fragment, strings.Join(known, ", "))
	}
	return ""
}

// hasFileUnder reports whether dir is a directory of the repository.
func hasFileUnder(files map[string][]byte, dir string) bool {
	if dir == "." {
		return true
	}
	for path := range files {
		if strings.HasPrefix(path, dir+"/") {
			return true
		}
	}
	return false
}

// anchors lists the section ids GitHub gives a Markdown file's headings (and
// explicit <a id> anchors), in order: a repeated heading gets -1, -2, ...
func anchors(doc string) []string {
	var out []string
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
		m := atxHeading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		id := anchor(m[1])
		if n := seen[id]; n > 0 {
			seen[id] = n + 1
			id += "-" + strconv.Itoa(n)
		} else {
			seen[id] = 1
		}
		out = append(out, id)
	}
	return out
}

var linkInHeading = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// anchor is GitHub's id for a heading: the text without its Markdown, lower
// case, with everything but letters, digits, spaces, hyphens and underscores
// dropped and spaces turned into hyphens.
func anchor(heading string) string {
	text := linkInHeading.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// route is one route the gateway serves: method (or "" for any) and path in
// gin's notation (/products/:id); prefix means "anything under path".
type route struct {
	method, path, source string
	prefix               bool
}

// openAPIRoutes reads the routes of an OpenAPI document.
func openAPIRoutes(spec []byte) ([]route, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	parameter := regexp.MustCompile(`\{([^}]+)\}`)
	var out []route
	for _, path := range sortedKeys(doc.Paths) {
		for _, method := range methods {
			if _, ok := doc.Paths[path][method]; ok {
				out = append(out, route{method: strings.ToUpper(method), path: parameter.ReplaceAllString(path, ":$1"), source: "openapi.json"})
			}
		}
	}
	return out, nil
}

// gatewayRoutes reads the routes gateway.go registers on its engine: calls of
// GET, POST, PUT, DELETE, PATCH or Any with a literal path.
func gatewayRoutes(src []byte) ([]route, error) {
	file, err := parser.ParseFile(token.NewFileSet(), "gateway.go", src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []route
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		method := sel.Sel.Name
		switch method {
		case "GET", "POST", "PUT", "DELETE", "PATCH":
		case "Any":
			method = ""
		default:
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		path, err := strconv.Unquote(lit.Value)
		if err != nil || !strings.HasPrefix(path, "/") {
			return true
		}
		r := route{method: method, path: path, source: "gateway.go"}
		if i := strings.Index(path, "/*"); i >= 0 {
			r.path, r.prefix = path[:i+1], true
		}
		out = append(out, r)
		return true
	})
	return out, nil
}

// documentedRoute is how the contract names a route: `METHOD /path`.
var documentedRoute = regexp.MustCompile("`(GET|POST|PUT|DELETE|PATCH) (/[^`\\s]*)`")

// undocumented lists the routes doc does not name.
func undocumented(doc string, routes []route) []string {
	type named struct{ method, path string }
	var inDoc []named
	for _, m := range documentedRoute.FindAllStringSubmatch(doc, -1) {
		inDoc = append(inDoc, named{m[1], m[2]})
	}
	var out []string
	for _, r := range routes {
		found := slices.ContainsFunc(inDoc, func(d named) bool {
			if r.method != "" && d.method != r.method {
				return false
			}
			if r.prefix {
				return strings.HasPrefix(d.path, r.path)
			}
			return d.path == r.path
		})
		switch {
		case found:
		case r.prefix:
			out = append(out, fmt.Sprintf("no route under `%s` (%s) is documented", r.path, r.source))
		case r.method == "":
			out = append(out, fmt.Sprintf("no method of `%s` (%s) is documented", r.path, r.source))
		default:
			out = append(out, fmt.Sprintf("`%s %s` (%s) is not documented", r.method, r.path, r.source))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
