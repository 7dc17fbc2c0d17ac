package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// A base is the first layer of an image, made from Debian packages the way
// distroless makes its images: the packages' files without documentation, a
// CA bundle, users and groups, and nothing that runs a shell or installs
// packages.
type base struct {
	name     string
	packages []string
}

// nonrootID is distroless's nonroot user and group, which Kubernetes can check
// against runAsNonRoot because images name it by number.
const nonrootID = 65532

var bases = map[string]base{
	// gcr.io/distroless/static: enough for a static binary (CGO_ENABLED=0).
	"distroless-static": {name: "distroless-static", packages: []string{"base-files", "netbase", "tzdata", "ca-certificates"}},
	// gcr.io/distroless/base: static plus glibc and OpenSSL, for cgo binaries.
	"distroless-base": {name: "distroless-base", packages: []string{"base-files", "netbase", "tzdata", "ca-certificates", "libc6", "libssl3"}},
}

// baseEnv is the environment distroless images set.
var baseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	// Where OpenSSL (and Go) find the CA bundle without a hashed certs directory.
	"SSL_CERT_FILE=" + caBundlePath,
}

const caBundlePath = "/etc/ssl/certs/ca-certificates.crt"

// baseLayerFormat names how a base layer is assembled from its packages; it is
// part of the cache key, so changing the assembly must change it.
const baseLayerFormat = "kshop-distroless-1"

// debPackage is one downloaded package: its name, version and .deb file.
type debPackage struct {
	name, version, file string
}

// packageSource finds the versions of packages and fetches them; apt is the
// real one, tests use their own.
type packageSource interface {
	// versions returns the version apt would install for each package.
	versions(names []string) (map[string]string, error)
	// download fetches the .debs of exactly these versions into dir.
	download(dir string, names []string, versions map[string]string) ([]debPackage, error)
	// contents returns a package's data tar stream and its control fields.
	contents(deb debPackage) (data io.ReadCloser, control []byte, err error)
}

// baseLayer returns the path and diff ID of the cached base layer, building it
// first if this set of package versions was never built.
func baseLayer(b base, src packageSource, cacheDir string, log io.Writer) (file, diffID string, versions map[string]string, err error) {
	versions, err = src.versions(b.packages)
	if err != nil {
		return "", "", nil, err
	}
	file = filepath.Join(cacheDir, b.name+"-"+baseCacheKey(b, versions)+".tar")
	if diffID, err := fileDigest(file); err == nil {
		return file, diffID, versions, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", nil, err
	}

	started := time.Now()
	fmt.Fprintf(log, "ociimage: building the %s layer once from Debian packages (%s; a few seconds), cached in %s\n",
		b.name, packageList(b.packages, versions), cacheDir)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", "", nil, err
	}
	work, err := os.MkdirTemp(cacheDir, ".debs-")
	if err != nil {
		return "", "", nil, err
	}
	defer os.RemoveAll(work)
	debs, err := src.download(work, b.packages, versions)
	if err != nil {
		return "", "", nil, err
	}
	fs, err := assembleBase(debs, src)
	if err != nil {
		return "", "", nil, err
	}
	// Written beside the final name and renamed, so a concurrent build of the
	// same layer (skaffold builds artifacts in parallel) never sees half a file.
	tmp, err := os.CreateTemp(cacheDir, ".layer-")
	if err != nil {
		return "", "", nil, err
	}
	defer os.Remove(tmp.Name())
	if diffID, err = fs.write(tmp); err != nil {
		tmp.Close()
		return "", "", nil, err
	}
	if err := tmp.Close(); err != nil {
		return "", "", nil, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", "", nil, err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return "", "", nil, err
	}
	fmt.Fprintf(log, "ociimage: %s layer built in %s: %s\n", b.name, time.Since(started).Round(100*time.Millisecond), file)
	return file, diffID, versions, nil
}

func baseCacheKey(b base, versions map[string]string) string {
	h := sha256.New()
	fmt.Fprintln(h, baseLayerFormat, b.name)
	for _, p := range b.packages {
		fmt.Fprintln(h, p, versions[p])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func packageList(names []string, versions map[string]string) string {
	list := make([]string, len(names))
	for i, n := range names {
		list[i] = n + " " + versions[n]
	}
	return strings.Join(list, ", ")
}

func fileDigest(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// assembleBase lays the packages out as distroless does.
func assembleBase(debs []debPackage, src packageSource) (*rootfs, error) {
	fs := newRootfs()
	var caCerts []caCert
	for _, deb := range debs {
		data, control, err := src.contents(deb)
		if err != nil {
			return nil, err
		}
		keep := keepPackageFile(deb.name)
		if deb.name == "ca-certificates" {
			// Only the certificates (gathered into the bundle below) and the
			// licence: the rest is the update-ca-certificates machinery.
			keep = func(p string, isDir bool) bool {
				if strings.HasPrefix(p, "usr/share/ca-certificates/") && strings.HasSuffix(p, ".crt") {
					return true
				}
				return p == "usr/share/doc/ca-certificates/copyright"
			}
		}
		err = fs.addTar(tar.NewReader(data), keep)
		if cerr := data.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", deb.name, err)
		}
		if deb.name == "ca-certificates" {
			caCerts = takeCACerts(fs)
		}
		// What is installed, for image scanners: distroless's status.d layout.
		if err := fs.addFile("var/lib/dpkg/status.d/"+deb.name, 0o644, 0, 0, control); err != nil {
			return nil, err
		}
	}
	if caCerts == nil {
		return nil, errors.New("no CA certificates: the ca-certificates package is missing or empty")
	}
	if err := fs.addFile(caBundlePath, 0o644, 0, 0, caBundle(caCerts)); err != nil {
		return nil, err
	}
	return fs, addUsers(fs)
}

// keepPackageFile drops what distroless drops: documentation, manual and
// info pages and lintian overrides, keeping each package's copyright file.
func keepPackageFile(pkg string) func(p string, isDir bool) bool {
	return func(p string, isDir bool) bool {
		for _, dropped := range []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian"} {
			if p == dropped || strings.HasPrefix(p, dropped+"/") {
				return strings.HasPrefix(p, "usr/share/doc/") && path.Base(p) == "copyright" && !isDir
			}
		}
		return true
	}
}

type caCert struct {
	path string
	pem  []byte
}

// takeCACerts removes the package's individual certificates from the layer
// and returns them sorted by path: the image carries only the bundle.
func takeCACerts(fs *rootfs) []caCert {
	var certs []caCert
	for p, e := range fs.entries {
		if strings.HasPrefix(p, "usr/share/ca-certificates/") && strings.HasSuffix(p, ".crt") {
			certs = append(certs, caCert{path: p, pem: e.data})
			delete(fs.entries, p)
		}
	}
	sort.Slice(certs, func(i, j int) bool { return certs[i].path < certs[j].path })
	return certs
}

// caBundle concatenates the certificates as update-ca-certificates does, each
// ending with a newline.
func caBundle(certs []caCert) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(c.pem)
		if len(c.pem) > 0 && c.pem[len(c.pem)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// addUsers writes distroless's users and groups (root, nobody, nonroot 65532),
// their homes, a world-writable /tmp, and the name service switch glibc and
// Go's resolver read.
func addUsers(fs *rootfs) error {
	files := []struct {
		path, content string
	}{
		{"etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
			"nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonrootID, nonrootID)},
		{"etc/group", fmt.Sprintf("root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:%d:\n", nonrootID)},
		{"etc/nsswitch.conf", "passwd:   files\ngroup:    files\nshadow:   files\nhosts:    files dns\nnetworks: files\nprotocols: files\nservices: files\nethers:   files\nrpc:      files\n"},
	}
	for _, f := range files {
		if err := fs.addFile(f.path, 0o644, 0, 0, []byte(f.content)); err != nil {
			return err
		}
	}
	dirs := []struct {
		path     string
		mode     int64
		uid, gid int
	}{
		{"root", 0o700, 0, 0},
		{"home", 0o755, 0, 0},
		{"home/nonroot", 0o700, nonrootID, nonrootID},
		{"tmp", 0o1777, 0, 0},
	}
	for _, d := range dirs {
		if err := fs.addDir(d.path, d.mode, d.uid, d.gid); err != nil {
			return err
		}
	}
	return nil
}

// apt is the packageSource of the machine's own apt: the versions its package
// lists offer, downloaded with apt-get, unpacked with dpkg-deb.
type apt struct {
	log     io.Writer
	updated bool
}

func (a *apt) versions(names []string) (map[string]string, error) {
	versions, err := aptCandidates(names)
	if err != nil && !a.updated {
		// A fresh machine may have no package lists yet: update them once.
		fmt.Fprintln(a.log, "ociimage: no Debian package lists for", strings.Join(names, " ")+": running apt-get update once")
		a.updated = true
		if out, uerr := exec.Command("apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return nil, fmt.Errorf("apt-get update: %v\n%s", uerr, out)
		}
		versions, err = aptCandidates(names)
	}
	return versions, err
}

func aptCandidates(names []string) (map[string]string, error) {
	out, err := exec.Command("apt-cache", append([]string{"show", "--no-all-versions"}, names...)...).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("apt-cache show %s: %v\n%s", strings.Join(names, " "), err, exit.Stderr)
		}
		return nil, fmt.Errorf("apt-cache (the images are made from Debian packages; run this on Debian or Ubuntu): %w", err)
	}
	versions := parseCandidates(out)
	for _, n := range names {
		if versions[n] == "" {
			return nil, fmt.Errorf("apt-cache knows no package %s", n)
		}
	}
	return versions, nil
}

// parseCandidates reads the Package and Version fields of apt-cache show's
// stanzas.
func parseCandidates(out []byte) map[string]string {
	versions := map[string]string{}
	var pkg string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			pkg = ""
		case strings.HasPrefix(line, "Package: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "Package: "))
		case strings.HasPrefix(line, "Version: ") && pkg != "" && versions[pkg] == "":
			versions[pkg] = strings.TrimSpace(strings.TrimPrefix(line, "Version: "))
		}
	}
	return versions
}

func (a *apt) download(dir string, names []string, versions map[string]string) ([]debPackage, error) {
	args := []string{"download"}
	for _, n := range names {
		args = append(args, n+"="+versions[n])
	}
	cmd := exec.Command("apt-get", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get %s: %v\n%s(if the versions are gone from the mirror, run apt-get update)", strings.Join(args, " "), err, out)
	}
	debs := make([]debPackage, len(names))
	for i, n := range names {
		// apt names the file name_version_arch.deb, the epoch's colon escaped.
		matches, err := filepath.Glob(filepath.Join(dir, n+"_*.deb"))
		if err != nil || len(matches) != 1 {
			return nil, fmt.Errorf("apt-get download left %d files for %s in %s", len(matches), n, dir)
		}
		debs[i] = debPackage{name: n, version: versions[n], file: matches[0]}
	}
	return debs, nil
}

func (a *apt) contents(deb debPackage) (io.ReadCloser, []byte, error) {
	control, err := exec.Command("dpkg-deb", "--field", deb.file).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("dpkg-deb --field %s: %w", deb.file, err)
	}
	if v := controlField(control, "Version"); v != deb.version {
		return nil, nil, fmt.Errorf("%s: version %q, asked for %q", deb.file, v, deb.version)
	}
	// --fsys-tarfile is what dpkg-deb -x unpacks, as a stream: owners and modes
	// come through as packaged, whoever runs this.
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb.file)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return &commandOutput{ReadCloser: stdout, cmd: cmd, stderr: &stderr}, control, nil
}

func controlField(control []byte, field string) string {
	for _, line := range strings.Split(string(control), "\n") {
		if v, ok := strings.CutPrefix(line, field+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// commandOutput is a command's stdout whose Close waits for the command and
// reports its failure.
type commandOutput struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (c *commandOutput) Close() error {
	_, _ = io.Copy(io.Discard, c.ReadCloser)
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(c.cmd.Args, " "), err, c.stderr.String())
	}
	return nil
}
