package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommittedFilesAreWhatTheDocumentGenerates fails when the OpenAPI
// document (or the walk) changed and the collections in docs/ were not
// generated again.
func TestCommittedFilesAreWhatTheDocumentGenerates(t *testing.T) {
	stale, err := run("../..", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range stale {
		t.Errorf("%s is not what %s generates: run go run ./hack/apidocs", path, openAPIPath)
	}
}

// TestTheWalkMustCoverEveryOperation: an operation added to the document
// without a step, a step expecting an undocumented status, and a document
// operation without an operationId are each refused.
func TestTheWalkMustCoverEveryOperation(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("../..", openAPIPath))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	paths := d["paths"].(map[string]any)

	paths["/products/{id}/reviews"] = map[string]any{"get": map[string]any{"operationId": "listReviews", "responses": map[string]any{"200": map[string]any{}}}}
	if _, err := generate(mustJSON(t, d)); err == nil || !strings.Contains(err.Error(), "listReviews") {
		t.Errorf("an operation in no step: %v", err)
	}
	delete(paths, "/products/{id}/reviews")

	paths["/products/{id}/reviews"] = map[string]any{"get": map[string]any{"responses": map[string]any{"200": map[string]any{}}}}
	if _, err := generate(mustJSON(t, d)); err == nil || !strings.Contains(err.Error(), "operationId") {
		t.Errorf("an operation without operationId: %v", err)
	}
	delete(paths, "/products/{id}/reviews")

	health := paths["/health"].(map[string]any)["get"].(map[string]any)
	health["responses"] = map[string]any{"204": map[string]any{}}
	if _, err := generate(mustJSON(t, d)); err == nil || !strings.Contains(err.Error(), "expects 200") {
		t.Errorf("a step expecting an undocumented status: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
