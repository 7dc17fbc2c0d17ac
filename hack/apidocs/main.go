// Command apidocs generates the API's collections for people from the OpenAPI
// document the gateway serves (services/gateway/openapi.json): a Postman
// collection and its environment for `make run`, and an .http file with its
// environment for the JetBrains HTTP client (and httpyac in VS Code), all in
// docs/. The requests walk every operation of the document in an order that
// works against a running platform (walk.go); services/e2e sends the Postman
// collection to the platform in `make test`, and this package's test fails when
// the committed files are not what the document generates.
//
//	go run ./hack/apidocs          write the files
//	go run ./hack/apidocs -check   exit 1 when a committed file is stale
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	check := flag.Bool("check", false, "only compare the committed files with what the document generates")
	flag.Parse()
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(2)
	}
	stale, err := run(root, !*check)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(2)
	}
	for _, path := range stale {
		if *check {
			fmt.Fprintf(os.Stderr, "apidocs: %s is stale: run go run ./hack/apidocs\n", path)
		} else {
			fmt.Fprintf(os.Stderr, "apidocs: wrote %s\n", path)
		}
	}
	if *check && len(stale) > 0 {
		os.Exit(1)
	}
}

// run generates the files under root and returns those that differ from what
// is there; write replaces them.
func run(root string, write bool) ([]string, error) {
	doc, err := os.ReadFile(filepath.Join(root, openAPIPath))
	if err != nil {
		return nil, err
	}
	files, err := generate(doc)
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, path := range generatedPaths() {
		full := filepath.Join(root, path)
		old, err := os.ReadFile(full)
		if err == nil && bytes.Equal(old, files[path]) {
			continue
		}
		stale = append(stale, path)
		if write {
			if err := os.WriteFile(full, files[path], 0o644); err != nil {
				return nil, err
			}
		}
	}
	return stale, nil
}

// repoRoot is the folder of go.mod, from the working directory up, so the
// command works from the root and from `go generate` in a package.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
