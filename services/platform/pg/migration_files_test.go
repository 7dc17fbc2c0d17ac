package pg_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryMigrationFileOfTheRepositoryStartsWithGooseUp reads the migrations of
// every service and platform package: goose refuses a file whose SQL is not
// preceded by "-- +goose Up", but only when it runs it; this fails at once.
func TestEveryMigrationFileOfTheRepositoryStartsWithGooseUp(t *testing.T) {
	var found []string
	for _, pattern := range []string{"../../*/migrations/*", "../*/migrations/*"} {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, matches...)
	}
	// The services' and the outbox's and inbox's sets, at least.
	if len(found) < 5 {
		t.Fatalf("found %d migration files (%v); the search looks in the wrong place", len(found), found)
	}
	for _, path := range found {
		if !strings.HasSuffix(path, ".sql") {
			t.Errorf("%s: a migration folder holds only .sql files", path)
			continue
		}
		if !startsWithGooseUp(t, path) {
			t.Errorf("%s: the first statement must be preceded by a line \"-- +goose Up\"", path)
		}
	}
}

func startsWithGooseUp(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		switch line := strings.TrimSpace(lines.Text()); {
		case line == "-- +goose Up":
			return true
		case line != "" && !strings.HasPrefix(line, "--"):
			return false
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return false
}
