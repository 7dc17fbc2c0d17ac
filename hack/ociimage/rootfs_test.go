package main

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestLayerPath(t *testing.T) {
	for in, want := range map[string]string{
		"./usr/bin/": "usr/bin", "/etc/passwd": "etc/passwd", "etc": "etc", "./": "", "/": "", "a/../b": "b", "../../etc": "etc",
	} {
		if got := layerPath(in); got != want {
			t.Errorf("layerPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// layerEntries writes fs and reads the tar stream back, in order.
func layerEntries(t *testing.T, fs *rootfs) ([]*tar.Header, map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := fs.write(&buf); err != nil {
		t.Fatal(err)
	}
	var hdrs []*tar.Header
	data := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		data[hdr.Name] = string(b)
		hdrs = append(hdrs, hdr)
	}
}

func TestLayerOrderParentsAndTimes(t *testing.T) {
	fs := newRootfs()
	must(t, fs.addFile("usr/lib/x86_64-linux-gnu/libc.so.6", 0o755, 0, 0, []byte("libc")))
	must(t, fs.addSymlink("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
	must(t, fs.addDir("tmp", 0o1777, 0, 0))
	must(t, fs.addDir("home/nonroot", 0o700, 65532, 65532))
	must(t, fs.addFile("usr-local-like/x", 0o644, 0, 0, nil)) // sorts between usr and usr/lib: a parent still comes first

	hdrs, data := layerEntries(t, fs)
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
		if !h.ModTime.Equal(layerTime) {
			t.Errorf("%s: time %s", h.Name, h.ModTime)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q %q leak the build machine's", h.Name, h.Uname, h.Gname)
		}
	}
	want := "home/ home/nonroot/ lib64/ lib64/ld-linux-x86-64.so.2 tmp/ usr/ usr-local-like/ usr-local-like/x usr/lib/ usr/lib/x86_64-linux-gnu/ usr/lib/x86_64-linux-gnu/libc.so.6"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("entries\n got %s\nwant %s", got, want)
	}
	byName := map[string]*tar.Header{}
	for _, h := range hdrs {
		byName[h.Name] = h
	}
	if h := byName["tmp/"]; h.Mode != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", h.Mode)
	}
	if h := byName["home/nonroot/"]; h.Mode != 0o700 || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("/home/nonroot: %o %d:%d", h.Mode, h.Uid, h.Gid)
	}
	if h := byName["usr/lib/"]; h.Mode != 0o755 || h.Uid != 0 {
		t.Errorf("an implied parent: %o %d", h.Mode, h.Uid)
	}
	if h := byName["lib64/ld-linux-x86-64.so.2"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" {
		t.Errorf("symlink %+v", h)
	}
	if data["usr/lib/x86_64-linux-gnu/libc.so.6"] != "libc" {
		t.Error("file content lost")
	}
}

func TestLayerBytesDependOnlyOnContent(t *testing.T) {
	build := func(order []string) string {
		fs := newRootfs()
		for _, p := range order {
			must(t, fs.addFile(p, 0o644, 0, 0, []byte(p)))
		}
		var buf bytes.Buffer
		id, err := fs.write(&buf)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := build([]string{"etc/a", "etc/b", "usr/c"})
	b := build([]string{"usr/c", "etc/b", "etc/a"})
	if a != b {
		t.Errorf("insertion order changed the layer: %s vs %s", a, b)
	}
	if c := build([]string{"etc/a", "etc/b", "usr/d"}); c == a {
		t.Error("different content, same digest")
	}
}

func TestLayerConflicts(t *testing.T) {
	fs := newRootfs()
	must(t, fs.addFile("etc/passwd", 0o644, 0, 0, []byte("x")))
	if err := fs.addFile("etc/passwd", 0o644, 0, 0, []byte("y")); err == nil {
		t.Error("a file added twice")
	}
	if err := fs.addDir("etc/passwd", 0o755, 0, 0); err == nil {
		t.Error("a directory over a file")
	}
	// A directory declared again takes the last owner and mode, as a package
	// tree and distroless's own directories both declare /tmp.
	must(t, fs.addDir("tmp", 0o755, 0, 0))
	must(t, fs.addDir("tmp", 0o1777, 0, 0))
	if e := fs.entries["tmp"]; e.mode != 0o1777 {
		t.Errorf("tmp mode %o", e.mode)
	}
	must(t, fs.addFile("bin/x/y", 0o644, 0, 0, nil))
	fs2 := newRootfs()
	must(t, fs2.addFile("bin", 0o644, 0, 0, nil))
	must(t, fs2.addFile("bin/x", 0o644, 0, 0, nil))
	if _, err := fs2.write(io.Discard); err == nil {
		t.Error("a file under a file was written")
	}
}

func TestAddTarCopiesHardLinksAndFilters(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	writeTarEntry(t, tw, &tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755})
	writeTarEntry(t, tw, &tar.Header{Typeflag: tar.TypeDir, Name: "./usr/", Mode: 0o755, Uname: "root"})
	writeTarEntry(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: "./usr/a", Mode: 0o4755, Size: 3}, "aaa")
	writeTarEntry(t, tw, &tar.Header{Typeflag: tar.TypeLink, Name: "./usr/b", Linkname: "./usr/a", Mode: 0o644})
	writeTarEntry(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: "./usr/skip", Mode: 0o644, Size: 1}, "s")
	must(t, tw.Close())

	fs := newRootfs()
	must(t, fs.addTar(tar.NewReader(&buf), func(p string, _ bool) bool { return p != "usr/skip" }))
	if fs.has("usr/skip") || !fs.has("usr/a") {
		t.Fatal("filter not applied")
	}
	if e := fs.entries["usr/a"]; e.mode != 0o4755 {
		t.Errorf("setuid bit lost: %o", e.mode)
	}
	if e := fs.entries["usr/b"]; e.typeflag != tar.TypeReg || string(e.data) != "aaa" {
		t.Errorf("hard link not copied: %+v", e)
	}

	var dev bytes.Buffer
	tw = tar.NewWriter(&dev)
	writeTarEntry(t, tw, &tar.Header{Typeflag: tar.TypeChar, Name: "./dev/null", Mode: 0o666})
	must(t, tw.Close())
	if err := newRootfs().addTar(tar.NewReader(&dev), func(string, bool) bool { return true }); err == nil {
		t.Error("a device node was accepted")
	}
}

func writeTarEntry(t *testing.T, tw *tar.Writer, hdr *tar.Header, content ...string) {
	t.Helper()
	must(t, tw.WriteHeader(hdr))
	for _, c := range content {
		if _, err := tw.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
