package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// fakePackages stands in for apt: small packages shaped like Debian's.
type fakePackages struct {
	versionOf map[string]string
	files     map[string][]fakeFile
	downloads int
}

type fakeFile struct {
	name    string // as in a .deb's data tar: ./usr/share/...
	mode    int64
	content string // a directory when name ends in /; a symlink target after "->"
}

func (f *fakePackages) versions(names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		v, ok := f.versionOf[n]
		if !ok {
			return nil, fmt.Errorf("no package %s", n)
		}
		out[n] = v
	}
	return out, nil
}

func (f *fakePackages) download(dir string, names []string, versions map[string]string) ([]debPackage, error) {
	f.downloads++
	var debs []debPackage
	for _, n := range names {
		debs = append(debs, debPackage{name: n, version: versions[n], file: dir + "/" + n + ".deb"})
	}
	return debs, nil
}

func (f *fakePackages) contents(deb debPackage) (io.ReadCloser, []byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, file := range append([]fakeFile{{name: "./", mode: 0o755}}, f.files[deb.name]...) {
		hdr := &tar.Header{Name: file.name, Mode: file.mode, Uname: "root", Gname: "root"}
		switch {
		case strings.HasSuffix(file.name, "/"):
			hdr.Typeflag = tar.TypeDir
		case strings.HasPrefix(file.content, "->"):
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, strings.TrimPrefix(file.content, "->")
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(file.content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(file.content)); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\n", deb.name, deb.version)
	return io.NopCloser(&buf), []byte(control), nil
}

func debianLike() *fakePackages {
	return &fakePackages{
		versionOf: map[string]string{"base-files": "12.4", "netbase": "6.4", "tzdata": "2026a", "ca-certificates": "2025", "libc6": "2.36", "libssl3": "3.0"},
		files: map[string][]fakeFile{
			"base-files": {
				{name: "./etc/", mode: 0o755}, {name: "./etc/os-release", content: "->../usr/lib/os-release"},
				{name: "./usr/lib/os-release", mode: 0o644, content: "ID=debian\n"},
				{name: "./tmp/", mode: 0o1777}, {name: "./root/", mode: 0o700}, {name: "./home/", mode: 0o755},
				{name: "./usr/share/doc/base-files/README", mode: 0o644, content: "readme"},
				{name: "./usr/share/doc/base-files/copyright", mode: 0o644, content: "base-files licence"},
				{name: "./usr/share/man/", mode: 0o755},
				{name: "./usr/share/lintian/overrides/base-files", mode: 0o644, content: "x"},
			},
			"netbase": {{name: "./etc/services", mode: 0o644, content: "http 80/tcp\n"}},
			"tzdata":  {{name: "./usr/share/zoneinfo/Europe/Paris", mode: 0o644, content: "TZif"}},
			"ca-certificates": {
				{name: "./usr/sbin/update-ca-certificates", mode: 0o755, content: "#!/bin/sh"},
				{name: "./etc/ssl/certs/", mode: 0o755},
				{name: "./usr/share/ca-certificates/mozilla/B_Root.crt", mode: 0o644, content: "-----B-----"},
				{name: "./usr/share/ca-certificates/mozilla/A_Root.crt", mode: 0o644, content: "-----A-----\n"},
				{name: "./usr/share/doc/ca-certificates/copyright", mode: 0o644, content: "ca licence"},
				{name: "./usr/share/man/man8/update-ca-certificates.8.gz", mode: 0o644, content: "man"},
			},
			"libc6": {
				{name: "./lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", mode: 0o755, content: "ld.so"},
				{name: "./lib/x86_64-linux-gnu/libc.so.6", mode: 0o755, content: "libc"},
				{name: "./lib64/ld-linux-x86-64.so.2", content: "->/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			},
			"libssl3": {{name: "./usr/lib/x86_64-linux-gnu/libssl.so.3", mode: 0o644, content: "ssl"}},
		},
	}
}

func TestBaseIsDistrolessFromPackages(t *testing.T) {
	src := debianLike()
	dir := t.TempDir()
	o := options{base: "distroless-base", adds: []addedFile{{host: writeHostFile(t, dir, "app", "app", 0o755), image: "/app", mode: 0o755}},
		entrypoint: "/app", user: "65532:65532", workdir: "/home/nonroot", tags: []string{"kshop.local/kshop/x:1"}, out: dir + "/x.tar", cacheDir: dir + "/cache"}
	must(t, build(o, src, io.Discard, io.Discard))
	img := readArchive(t, o.out)

	for p, want := range map[string]string{
		"etc/ssl/certs/ca-certificates.crt":       "-----A-----\n-----B-----\n", // sorted by path, each line-terminated
		"etc/services":                            "http 80/tcp\n",
		"usr/share/zoneinfo/Europe/Paris":         "TZif",
		"usr/share/doc/base-files/copyright":      "base-files licence",
		"usr/share/doc/ca-certificates/copyright": "ca licence",
		"lib/x86_64-linux-gnu/libc.so.6":          "libc",
		"usr/lib/x86_64-linux-gnu/libssl.so.3":    "ssl",
		"app":                                     "app",
	} {
		if got, ok := img.data[p]; !ok || string(got) != want {
			t.Errorf("%s = %q (present %v), want %q", p, got, ok, want)
		}
	}
	for _, gone := range []string{"usr/share/doc/base-files/README", "usr/share/man", "usr/share/lintian", "usr/sbin/update-ca-certificates",
		"usr/share/ca-certificates", "usr/share/ca-certificates/mozilla/A_Root.crt", "usr/share/man/man8/update-ca-certificates.8.gz"} {
		if _, ok := img.files[gone]; ok {
			t.Errorf("%s should not be in the image", gone)
		}
	}
	if p, hdr := img.resolve("/lib64/ld-linux-x86-64.so.2"); hdr == nil || string(img.data[p]) != "ld.so" {
		t.Errorf("the glibc loader does not resolve: %s", p)
	}
	if p, _ := img.resolve("/etc/os-release"); string(img.data[p]) != "ID=debian\n" {
		t.Errorf("os-release resolves to %s", p)
	}
	if !strings.Contains(string(img.data["etc/passwd"]), "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n") ||
		!strings.Contains(string(img.data["etc/passwd"]), "root:x:0:0:") || !strings.Contains(string(img.data["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("users:\n%s\n%s", img.data["etc/passwd"], img.data["etc/group"])
	}
	if !strings.Contains(string(img.data["etc/nsswitch.conf"]), "hosts:    files dns") {
		t.Errorf("nsswitch.conf:\n%s", img.data["etc/nsswitch.conf"])
	}
	if h := img.files["home/nonroot"]; h == nil || h.Uid != 65532 || h.Mode != 0o700 {
		t.Errorf("/home/nonroot: %+v", h)
	}
	if h := img.files["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("/tmp: %+v", h)
	}
	if h := img.files["var/lib/dpkg/status.d/libc6"]; h == nil || !strings.Contains(string(img.data["var/lib/dpkg/status.d/libc6"]), "Version: 2.36") {
		t.Error("no status.d entry for libc6")
	}
	if env := strings.Join(img.config.Config.Env, " "); !strings.Contains(env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") || !strings.Contains(env, "PATH=/usr/local/sbin:") {
		t.Errorf("env %s", env)
	}
	if len(img.config.History) != 2 || !strings.Contains(img.config.History[0].Comment, "libc6 2.36") {
		t.Errorf("history %+v", img.config.History)
	}

	// The static base has no glibc.
	o.base, o.out = "distroless-static", dir+"/static.tar"
	must(t, build(o, src, io.Discard, io.Discard))
	if _, ok := readArchive(t, o.out).files["lib/x86_64-linux-gnu/libc.so.6"]; ok {
		t.Error("distroless-static carries glibc")
	}
}

func TestBaseLayerIsCachedPerPackageVersions(t *testing.T) {
	src := debianLike()
	cache := t.TempDir()
	var log bytes.Buffer
	first, id1, _, err := baseLayer(bases["distroless-static"], src, cache, &log)
	must(t, err)
	if !strings.Contains(log.String(), "building the distroless-static layer once") {
		t.Errorf("no progress line: %q", log.String())
	}
	log.Reset()
	second, id2, _, err := baseLayer(bases["distroless-static"], src, cache, &log)
	must(t, err)
	if src.downloads != 1 || first != second || id1 != id2 || log.Len() != 0 {
		t.Errorf("the second build was not served from the cache: %d downloads, %s %s, log %q", src.downloads, first, second, log.String())
	}

	src.versionOf["tzdata"] = "2026b"
	third, _, _, err := baseLayer(bases["distroless-static"], src, cache, io.Discard)
	must(t, err)
	if src.downloads != 2 || third == first {
		t.Error("a new tzdata did not build a new layer")
	}
	entries, err := os.ReadDir(cache)
	must(t, err)
	if len(entries) != 2 {
		t.Errorf("the cache holds %d entries, want the two layers only (no temporary files)", len(entries))
	}
}

func TestBaseWithoutCACertificatesFails(t *testing.T) {
	src := debianLike()
	src.files["ca-certificates"] = nil
	if _, _, _, err := baseLayer(bases["distroless-static"], src, t.TempDir(), io.Discard); err == nil || !strings.Contains(err.Error(), "CA certificates") {
		t.Errorf("err = %v", err)
	}
}

func TestParseCandidates(t *testing.T) {
	out := "Package: libc6\nVersion: 2.36-9+deb12u14\nDescription: x\n Version: not this\n\nPackage: tzdata\nSource: tzdata\nVersion: 2026f-0+deb12u1\n"
	got := parseCandidates([]byte(out))
	if got["libc6"] != "2.36-9+deb12u14" || got["tzdata"] != "2026f-0+deb12u1" || len(got) != 2 {
		t.Errorf("got %v", got)
	}
}
