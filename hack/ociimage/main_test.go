package main

import (
	"io"
	"strings"
	"testing"
)

func TestOptions(t *testing.T) {
	base := []string{"-base", "distroless-base", "-add", "bin/app:/app", "-entrypoint", "/app", "-tag", "kshop.local/kshop/gateway:dev", "-o", "out.tar"}
	o, err := parseOptions(base, io.Discard)
	must(t, err)
	if o.user != "65532:65532" || o.workdir != "/home/nonroot" || o.adds[0] != (addedFile{host: "bin/app", image: "/app", mode: -1}) {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseOptions(append(base, "-user", "0:0", "-add", "x:/etc/x.conf:0640"), io.Discard)
	must(t, err)
	if o.workdir != "/" || o.adds[1].mode != 0o640 {
		t.Errorf("root's working directory or an explicit mode: %+v", o)
	}
	if _, err := parseOptions([]string{"-base", "scratch", "-add", "a:/a", "-entrypoint", "/a", "-tag", "127.0.0.1:15000/x:1", "-push"}, io.Discard); err != nil {
		t.Errorf("-push without -o: %v", err)
	}
	if o, err := parseOptions([]string{"-base", "distroless-static", "-prepare"}, io.Discard); err != nil || !o.prepare {
		t.Errorf("-prepare: %v", err)
	}

	for _, bad := range [][]string{
		{"-base", "alpine"},
		{"-base", "scratch", "-prepare"},
		{"-user", "nonroot:nonroot"},
		{"-user", ""},
		{"-entrypoint", "app"},
		{"-tag", "Kshop/Gateway:dev"},
		{"-tag", "kshop/gateway"},
		{"-tag", "kshop/gateway@sha256:0123"},
		{"-add", "app"},
		{"-add", "app:relative"},
		{"-add", "app:/"},
		{"-add", "app:/app:rwx"},
		{"-env", "NOEQUALS"},
		{"-o", ""},
		{"-push", "-tag", "kshop/no-registry:x"},
		{"extra-argument"},
	} {
		args := append(append([]string{}, base...), bad...)
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestValidReference(t *testing.T) {
	for _, ref := range []string{"kshop/gateway:dev", "kshop.local/kshop/gateway:v1.2.3", "127.0.0.1:5000/kshop/a_b:x-1", "localhost/a__b--c:1", "kshop.local/coredns:1.12.1", "pause:3.10"} {
		if !validReference(ref) {
			t.Errorf("%q refused", ref)
		}
	}
	for _, ref := range []string{"kshop/gateway", ":tag", "kshop//gateway:x", "kshop/gateway:", "kshop/gateway:-x", "UPPER/case:x", "a/_b:x", "a/b_:x"} {
		if validReference(ref) {
			t.Errorf("%q accepted", ref)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := strings.Join(mergeEnv(baseEnv, []string{"PATH=/app", "TZ=UTC"}), " ")
	if got != "PATH=/app SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt TZ=UTC" {
		t.Errorf("got %s", got)
	}
	if baseEnv[0] == "PATH=/app" {
		t.Error("mergeEnv changed the shared defaults")
	}
}

func TestScratchImageNeedsFiles(t *testing.T) {
	o := options{base: "scratch", entrypoint: "/x", user: "0", workdir: "/", tags: []string{"a/b:c"}, out: t.TempDir() + "/x.tar"}
	if err := build(o, nil, io.Discard, io.Discard); err == nil {
		t.Error("an empty image was built")
	}
}
