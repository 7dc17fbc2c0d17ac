package main

// The Dockerfile is what users build with; hack/image.sh builds the same
// image without Docker, for the test cluster. These tests read the Dockerfile,
// build an image with hack/image.sh, and fail when the two disagree.

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// dockerfileImage is what a Dockerfile's final stage says about the image.
type dockerfileImage struct {
	from       string   // the final stage's base image
	user       string   // USER, or "" to keep the base's
	entrypoint []string // ENTRYPOINT in exec form
	cmd        []string
	copies     []string // the destination of each COPY into the final stage
	cgo        []string // the services built with CGO_ENABLED=1
}

// parseDockerfile reads the final stage (continuation lines joined, comments
// skipped) and the build stage's list of cgo services.
func parseDockerfile(text string) (dockerfileImage, error) {
	var img dockerfileImage
	joined := strings.ReplaceAll(text, "\\\n", " ")
	stages := 0
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		args = strings.TrimSpace(args)
		switch strings.ToUpper(instr) {
		case "FROM":
			stages++
			fields := strings.Fields(args)
			img = dockerfileImage{from: fields[0]}
		case "USER":
			img.user = args
		case "ENTRYPOINT":
			list, err := execForm(args)
			if err != nil {
				return img, fmt.Errorf("ENTRYPOINT: %w", err)
			}
			img.entrypoint = list
		case "CMD":
			list, err := execForm(args)
			if err != nil {
				return img, fmt.Errorf("CMD: %w", err)
			}
			img.cmd = list
		case "COPY", "ADD":
			fields := strings.Fields(args)
			img.copies = append(img.copies, fields[len(fields)-1])
		}
	}
	if stages == 0 {
		return img, fmt.Errorf("no FROM")
	}
	cgo, err := cgoServices(text)
	img.cgo = cgo
	return img, err
}

// execForm parses ["a", "b"]: the shell form would run /bin/sh, which the
// image does not have.
func execForm(args string) ([]string, error) {
	if !strings.HasPrefix(args, "[") || !strings.HasSuffix(args, "]") {
		return nil, fmt.Errorf("%s is not in exec form", args)
	}
	var list []string
	for _, f := range strings.Split(strings.Trim(args, "[]"), ",") {
		list = append(list, strings.Trim(strings.TrimSpace(f), `"`))
	}
	return list, nil
}

// cgoPattern finds the shell case arm that turns cgo on: `a|b|c) cgo=1 ;;`,
// the form the Dockerfile and hack/image.sh both use.
var cgoPattern = regexp.MustCompile(`(?m)^\s*([a-z|]+)\)\s*cgo=1\s*;;`)

func cgoServices(text string) ([]string, error) {
	m := cgoPattern.FindAllStringSubmatch(text, -1)
	if len(m) != 1 {
		return nil, fmt.Errorf("want one `services) cgo=1 ;;` line, found %d", len(m))
	}
	list := strings.Split(m[0][1], "|")
	sort.Strings(list)
	return list, nil
}

// distrolessBases maps the Dockerfile's runtime image to the builder's base,
// and what its tag means: the :nonroot images run as 65532 in /home/nonroot.
var distrolessBases = map[string]struct {
	base, user, workdir string
}{
	"gcr.io/distroless/base-debian12:nonroot":   {"distroless-base", "65532:65532", "/home/nonroot"},
	"gcr.io/distroless/base-debian12":           {"distroless-base", "0:0", "/"},
	"gcr.io/distroless/static-debian12:nonroot": {"distroless-static", "65532:65532", "/home/nonroot"},
	"gcr.io/distroless/static-debian12":         {"distroless-static", "0:0", "/"},
}

// imageDifferences lists how the built image differs from what the
// Dockerfile describes; empty means the same image.
func imageDifferences(df dockerfileImage, img *imageArchive) []string {
	var diffs []string
	base, ok := distrolessBases[df.from]
	if !ok {
		return []string{fmt.Sprintf("the Dockerfile runs on %s, which the builder has no base for", df.from)}
	}
	if got := img.config.History[0].CreatedBy; got != "ociimage -base "+base.base {
		diffs = append(diffs, fmt.Sprintf("base: the Dockerfile's %s is %s, hack/image.sh used %q", df.from, base.base, got))
	}
	wantUser := base.user
	if df.user != "" {
		resolved, err := resolveUser(df.user, img)
		if err != nil {
			diffs = append(diffs, err.Error())
		}
		wantUser = resolved
	}
	if got, err := resolveUser(img.config.Config.User, img); err != nil || got != wantUser {
		diffs = append(diffs, fmt.Sprintf("user: the Dockerfile runs as %s, the image as %q (%v)", wantUser, img.config.Config.User, err))
	}
	if !regexp.MustCompile(`^[0-9]+:[0-9]+$`).MatchString(img.config.Config.User) {
		diffs = append(diffs, fmt.Sprintf("user %q is not numeric: Kubernetes cannot check runAsNonRoot", img.config.Config.User))
	}
	if !slices.Equal(img.config.Config.Entrypoint, df.entrypoint) {
		diffs = append(diffs, fmt.Sprintf("entrypoint: Dockerfile %q, image %q", df.entrypoint, img.config.Config.Entrypoint))
	}
	if !slices.Equal(img.config.Config.Cmd, df.cmd) {
		diffs = append(diffs, fmt.Sprintf("cmd: Dockerfile %q, image %q", df.cmd, img.config.Config.Cmd))
	}
	if img.config.Config.WorkingDir != base.workdir {
		diffs = append(diffs, fmt.Sprintf("working directory: %s's is %s, the image's %s", df.from, base.workdir, img.config.Config.WorkingDir))
	}
	for _, dst := range df.copies {
		p, hdr := img.resolve(dst)
		if hdr == nil || hdr.Typeflag != tar.TypeReg {
			diffs = append(diffs, fmt.Sprintf("the Dockerfile copies %s, the image has no such file", dst))
			continue
		}
		if hdr.Mode&0o111 == 0 || hdr.Uid != 0 {
			diffs = append(diffs, fmt.Sprintf("%s: mode %o owner %d, want executable and root's", dst, hdr.Mode, hdr.Uid))
		}
		if !bytes.HasPrefix(img.data[p], []byte("\x7fELF")) {
			diffs = append(diffs, fmt.Sprintf("%s is not a program", dst))
		}
	}
	if len(df.entrypoint) > 0 && !slices.Contains(df.copies, df.entrypoint[0]) {
		diffs = append(diffs, fmt.Sprintf("the entrypoint %s is not what the Dockerfile copies (%q)", df.entrypoint[0], df.copies))
	}
	return diffs
}

// resolveUser turns USER (names or numbers) into uid:gid through the image's
// /etc/passwd and /etc/group, as the runtime does.
func resolveUser(user string, img *imageArchive) (string, error) {
	name, group, hasGroup := strings.Cut(user, ":")
	uid, gid, err := lookupID(name, img.data["etc/passwd"], 2)
	if err != nil {
		return "", err
	}
	if hasGroup {
		if gid, _, err = lookupID(group, img.data["etc/group"], 2); err != nil {
			return "", err
		}
	}
	return uid + ":" + gid, nil
}

// lookupID finds name (or a number, kept) in a passwd- or group-style file,
// returning field idField and, for passwd, the primary group.
func lookupID(name string, file []byte, idField int) (id, primaryGroup string, err error) {
	if regexp.MustCompile(`^[0-9]+$`).MatchString(name) {
		for _, line := range strings.Split(string(file), "\n") {
			if f := strings.Split(line, ":"); len(f) > idField+1 && f[idField] == name {
				return name, f[idField+1], nil
			}
		}
		return name, "0", nil // an unknown uid runs in group 0, as Docker does
	}
	for _, line := range strings.Split(string(file), "\n") {
		f := strings.Split(line, ":")
		if len(f) > idField && f[0] == name {
			if len(f) > idField+1 {
				return f[idField], f[idField+1], nil
			}
			return f[idField], "", nil
		}
	}
	return "", "", fmt.Errorf("%s is not in the image's passwd/group", name)
}

// distrolessDifferences checks what any distroless-like image promises.
func distrolessDifferences(img *imageArchive, glibc bool) []string {
	var diffs []string
	for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/dash", "/bin/busybox", "/usr/bin/sh", "/usr/bin/dpkg", "/usr/bin/apt", "/usr/bin/apt-get"} {
		if _, hdr := img.resolve(shell); hdr != nil {
			diffs = append(diffs, shell+" is in the image")
		}
	}
	if !strings.Contains(string(img.data["etc/passwd"]), "\nnonroot:x:65532:65532:") {
		diffs = append(diffs, "no nonroot (65532) in /etc/passwd")
	}
	bundle := img.data["etc/ssl/certs/ca-certificates.crt"]
	certs := 0
	for block, rest := pem.Decode(bundle); block != nil; block, rest = pem.Decode(rest) {
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			diffs = append(diffs, "a CA certificate does not parse: "+err.Error())
			break
		}
		certs++
	}
	if certs < 100 {
		diffs = append(diffs, fmt.Sprintf("the CA bundle has %d certificates", certs))
	}
	if !slices.Contains(img.config.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		diffs = append(diffs, "SSL_CERT_FILE is not set")
	}
	if _, hdr := img.resolve("/lib64/ld-linux-x86-64.so.2"); (hdr != nil) != glibc {
		diffs = append(diffs, fmt.Sprintf("glibc's loader present: %v, want %v", hdr != nil, glibc))
	}
	if h := img.files["tmp"]; h == nil || h.Mode != 0o1777 {
		diffs = append(diffs, "no world-writable /tmp")
	}
	return diffs
}

// cgoNeeds lists what a cgo program asks of its image: the ELF interpreter
// and each shared library it was linked against.
func cgoNeeds(t *testing.T, program string) []string {
	t.Helper()
	f, err := elf.Open(program)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var needs []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			needs = append(needs, strings.TrimRight(string(b), "\x00"))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		needs = append(needs, "/lib/x86_64-linux-gnu/"+lib) // Debian's multiarch directory, on the loader's default path
	}
	if len(needs) < 2 {
		t.Fatalf("%s does not look like a cgo program (needs %q)", program, needs)
	}
	return needs
}

func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfileAndImageScriptBuildTheSameImage(t *testing.T) {
	df, err := parseDockerfile(repoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := cgoServices(repoFile(t, "hack/image.sh"))
	if err != nil {
		t.Fatalf("hack/image.sh: %v", err)
	}
	if !slices.Equal(df.cgo, script) {
		t.Errorf("cgo services: the Dockerfile builds %q with cgo, hack/image.sh %q", df.cgo, script)
	}
	dockerBuild, scriptBuild := goBuildCommand(repoFile(t, "Dockerfile")), goBuildCommand(repoFile(t, "hack/image.sh"))
	if dockerBuild == "" || dockerBuild != scriptBuild {
		t.Errorf("the go build flags differ:\n Dockerfile:    %s\n hack/image.sh: %s", dockerBuild, scriptBuild)
	}

	// The real script on a real service (the smallest; every service goes
	// through the same lines), without importing it anywhere.
	out := filepath.Join(t.TempDir(), "loadgen.tar")
	cmd := exec.Command("hack/image.sh", "loadgen", "kshop.local/kshop/loadgen:equivalence", out)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = withoutEnv(os.Environ(), "KSHOP_CLUSTER_CONTAINERD", "GCFLAGS")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/image.sh: %v\n%s%s", err, b, prepareHint)
	}
	img := readArchive(t, out)
	// The binary says how it was built: as the Dockerfile's go build line, with
	// no GCFLAGS, for a service outside the cgo list.
	info, err := buildinfo.Read(bytes.NewReader(img.data["app"]))
	if err != nil {
		t.Fatalf("/app: %v", err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" || settings["-gcflags"] != "" {
		t.Errorf("loadgen was built with %v", settings)
	}
	// -ldflags is not recorded with -trimpath: -s -w show as no symbol table
	// and no debug information.
	program, err := elf.NewFile(bytes.NewReader(img.data["app"]))
	if err != nil {
		t.Fatal(err)
	}
	if program.Section(".symtab") != nil || program.Section(".debug_info") != nil || program.Section(".zdebug_info") != nil {
		t.Error("/app has symbols or debug information: not linked with -s -w")
	}
	for _, d := range imageDifferences(df, img) {
		t.Error(d)
	}
	glibc := distrolessBases[df.from].base == "distroless-base"
	for _, d := range distrolessDifferences(img, glibc) {
		t.Error(d)
	}
	if len(df.cgo) > 0 && !glibc {
		t.Errorf("%q are built with cgo, but %s has no glibc", df.cgo, df.from)
	}

	// What a cgo service needs at run time, the base has.
	probe := filepath.Join(t.TempDir(), "probe")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", probe, "./testdata/cgoprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a cgo program: %v\n%s", err, b)
	}
	for _, need := range cgoNeeds(t, probe) {
		if _, hdr := img.resolve(need); hdr == nil || hdr.Typeflag != tar.TypeReg {
			t.Errorf("a cgo program needs %s, which the image lacks", need)
		}
	}
}

// goBuildCommand returns a script's go build command up to its -o, with line
// continuations joined and ${VAR} written $VAR, for comparison.
func goBuildCommand(text string) string {
	text = regexp.MustCompile(`\\\n\s*`).ReplaceAllString(text, " ")
	text = regexp.MustCompile(`\$\{([A-Za-z_]+)\}`).ReplaceAllString(text, "$$$1")
	loc := regexp.MustCompile(`(^|[\s;])go build `).FindStringIndex(text)
	if loc == nil {
		return ""
	}
	command, _, _ := strings.Cut(strings.TrimLeft(text[loc[0]:], " \t\n;"), " -o ")
	return strings.Join(strings.Fields(command), " ")
}

// prepareHint says how to get the base layer where the test cannot build it.
const prepareHint = `
The base layer is made from Debian packages (apt-get download) and cached in $KSHOP_CACHE_DIR/images.
make test prepares it; by hand: go run ./hack/ociimage -base distroless-base -prepare`

func withoutEnv(env []string, keys ...string) []string {
	return slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(keys, k)
	})
}

// TestCgoServicesAreTheKafkaOnes checks the list itself: a service links
// librdkafka (and cannot build without cgo) exactly when it imports
// confluent-kafka-go, directly or through a package such as the outbox.
func TestCgoServicesAreTheKafkaOnes(t *testing.T) {
	df, err := parseDockerfile(repoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	services := []string{"gateway", "auth", "product", "order", "mail", "controller", "loadgen"}
	args := []string{"list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`}
	for _, s := range services {
		args = append(args, "github.com/kshop/kshop/services/cmd/"+s)
	}
	list := exec.Command("go", args...)
	list.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var kafka []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if slices.Contains(fields[1:], "github.com/confluentinc/confluent-kafka-go/v2/kafka") {
			kafka = append(kafka, path.Base(fields[0]))
		}
	}
	sort.Strings(kafka)
	if !slices.Equal(kafka, df.cgo) {
		t.Errorf("services importing confluent-kafka-go: %q; built with cgo by the Dockerfile: %q", kafka, df.cgo)
	}
}

// TestEquivalenceCheckSeesDrift feeds the comparison a Dockerfile that drifted
// from the image, each way, and expects it to notice.
func TestEquivalenceCheckSeesDrift(t *testing.T) {
	src := debianLike()
	dir := t.TempDir()
	elfFile := writeHostFile(t, dir, "app", "\x7fELF program", 0o755)
	o := options{base: "distroless-base", adds: []addedFile{{host: elfFile, image: "/app", mode: -1}}, entrypoint: "/app",
		user: "65532:65532", workdir: "/home/nonroot", tags: []string{"kshop.local/kshop/x:1"}, out: dir + "/x.tar", cacheDir: dir}
	must(t, build(o, src, os.Stderr, os.Stderr))
	img := readArchive(t, o.out)

	same := `FROM golang AS build
RUN case "$SERVICE" in \
      auth|order) cgo=1 ;; \
    esac
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/app /app
USER %s
ENTRYPOINT ["/app"]
`
	for _, user := range []string{"65532:65532", "nonroot:nonroot", "nonroot", "65532"} {
		df, err := parseDockerfile(fmt.Sprintf(same, user))
		must(t, err)
		if d := imageDifferences(df, img); len(d) > 0 {
			t.Errorf("USER %s: the same image reported as different: %q", user, d)
		}
		if !slices.Equal(df.cgo, []string{"auth", "order"}) {
			t.Errorf("cgo list %q", df.cgo)
		}
	}
	for name, dockerfile := range map[string]string{
		"root user":    strings.Replace(same, "USER %s", "USER 0:0", 1),
		"other user":   strings.Replace(same, "USER %s", "USER nobody", 1),
		"static base":  strings.Replace(strings.Replace(same, "base-debian12", "static-debian12", 1), "USER %s", "", 1),
		"other binary": strings.NewReplacer("/app", "/usr/bin/kshop", "USER %s", "").Replace(same),
		"an argument":  strings.Replace(same, "USER %s", "CMD [\"serve\"]", 1),
		"root base":    strings.Replace(strings.Replace(same, ":nonroot", "", 1), "USER %s", "", 1),
		"unknown base": strings.Replace(strings.Replace(same, "gcr.io/distroless/base-debian12", "debian", 1), "USER %s", "", 1),
		"two copies":   strings.Replace(same, "USER %s", "COPY config.yaml /etc/kshop.yaml", 1),
	} {
		df, err := parseDockerfile(dockerfile)
		must(t, err)
		if d := imageDifferences(df, img); len(d) == 0 {
			t.Errorf("%s: a drifted Dockerfile reported as the same image", name)
		}
	}
	if _, err := parseDockerfile(strings.Replace(same, "cgo=1", "cgo=0", 1)); err == nil {
		t.Error("a Dockerfile without its cgo list parsed")
	}
}
