package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/cmd/binaries/all"
	"github.com/kshop/kshop/services/platform/config"
)

// TestCommittedReferenceIsCurrent fails when a variable was added, renamed or
// described anew and docs/configuration.md was not generated again.
func TestCommittedReferenceIsCurrent(t *testing.T) {
	want, err := render(all.Binaries)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("../..", Path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go run ./hack/configdoc", Path)
	}
}

// Every variable of every binary has its row (the all-in-one binary's
// services through their own sections), and a variable without a
// description stops the reference.
func TestEveryVariableHasARow(t *testing.T) {
	doc, err := render(all.Binaries)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range all.Binaries {
		if !bytes.Contains(doc, []byte("\n## "+bin.Name+"\n")) {
			t.Errorf("no section for %s", bin.Name)
		}
		for _, s := range bin.Sections {
			vars, _ := config.Describe(s.Prefix, s.Spec)
			for _, v := range vars {
				if !bytes.Contains(doc, []byte("| `"+v.Name+"` |")) {
					t.Errorf("%s: no row for %s", bin.Name, v.Name)
				}
			}
		}
	}
	type undescribed struct {
		Level string `envconfig:"LEVEL"`
	}
	bad := binaries.Binary{Name: "bad", Sections: []config.Section{{Prefix: "KSHOP_BAD", Spec: undescribed{}}}}
	if _, err := render([]binaries.Binary{bad}); err == nil || !strings.Contains(err.Error(), "KSHOP_BAD_LEVEL") {
		t.Errorf("a variable without description: %v", err)
	}
}
