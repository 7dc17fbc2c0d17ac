package all

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/platform/config"
)

// Every variable of every command has a description, and -help lists them
// all: a field added without desc fails here, naming the variable.
func TestEveryVariableIsDescribed(t *testing.T) {
	for _, b := range Binaries {
		all, err := config.DescribeAll(b.Sections)
		if err != nil {
			t.Errorf("%s: %v", b.Name, err)
			continue
		}
		var out bytes.Buffer
		if err := b.PrintHelp(&out); err != nil {
			t.Fatalf("%s: %v", b.Name, err)
		}
		for _, vars := range all {
			if len(vars) == 0 {
				t.Errorf("%s: a section without variables", b.Name)
			}
			for _, v := range vars {
				if !strings.Contains(out.String(), "  "+v.Name+" (") {
					t.Errorf("%s -help does not list %s", b.Name, v.Name)
				}
			}
		}
	}
}

// The all-in-one binary reads every service's variables besides its own.
func TestKshopListsEveryService(t *testing.T) {
	var out bytes.Buffer
	if err := Kshop.PrintHelp(&out); err != nil {
		t.Fatal(err)
	}
	for _, b := range []binaries.Binary{Gateway, Auth, Product, Order, Mail} {
		vars, _ := config.Describe(b.Sections[0].Prefix, b.Sections[0].Spec)
		for _, v := range vars {
			if !strings.Contains(out.String(), "  "+v.Name+" (") {
				t.Errorf("kshop -help does not list %s", v.Name)
			}
		}
	}
}

// The standard variables the libraries read are named with the binaries that
// use those libraries, found from the settings' types.
func TestLibraryVariablesGoWithTheirLibraries(t *testing.T) {
	for _, c := range []struct {
		b    binaries.Binary
		want []string
	}{
		{Gateway, []string{binaries.OTelNote}},
		{Auth, []string{binaries.PostgresNote, binaries.OTelNote}},
		{Mail, []string{binaries.PostgresNote, binaries.OTelNote}},
		{Kshop, []string{binaries.PostgresNote, binaries.OTelNote}},
		{Controller, []string{binaries.KubeNote}},
		{binaries.Loadgen, nil},
	} {
		if got := c.b.LibraryNotes(); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s: notes %q, want %q", c.b.Name, got, c.want)
		}
		var out bytes.Buffer
		if err := c.b.PrintHelp(&out); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.want {
			if !strings.Contains(out.String(), n) {
				t.Errorf("%s -help lacks %q", c.b.Name, n)
			}
		}
	}
}
