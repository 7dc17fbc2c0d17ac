// Command ociimage builds a container image without Docker: a base layer made
// from Debian packages the way distroless makes its images, one layer with the
// given files, written as a docker-archive tarball that `docker load` and
// `ctr images import` read.
//
//	go run ./hack/ociimage -base distroless-base -add bin/gateway:/app -entrypoint /app \
//	    -tag kshop.local/kshop/gateway:dev -o gateway.tar
//	go run ./hack/ociimage -base distroless-base -prepare   # only build and cache the base layer
//
// Run it with -h for every flag.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// options is one image to build.
type options struct {
	base       string
	adds       []addedFile
	entrypoint string
	args       []string
	user       string
	env        []string
	workdir    string
	tags       []string
	out        string
	cacheDir   string
	prepare    bool
	push       bool
}

// addedFile is a file of this machine put into the image.
type addedFile struct {
	host, image string
	mode        int64 // -1: from the host file (0755 if executable, else 0644)
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	var adds, argv, env, tags listFlag
	fl := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, `usage: go run ./hack/ociimage -base BASE [-add HOST:/PATH[:MODE]]... [-entrypoint /PATH] [-arg ARG]...
           [-user UID:GID] [-env KEY=VALUE]... [-workdir DIR] -tag REF [-tag REF]... [-o OUT.tar] [-push]
       go run ./hack/ociimage -base BASE -prepare

Builds an image without Docker and writes it as a docker-archive tarball (docker load,
ctr images import), or pushes it to a registry (-push). BASE is
  distroless-base    gcr.io/distroless/base's contents, from Debian packages: base-files,
                     netbase, tzdata, the CA bundle, users root/nobody/nonroot, glibc, OpenSSL
  distroless-static  the same without glibc and OpenSSL (gcr.io/distroless/static)
  scratch            no base layer
The base layer is built once per set of package versions and cached in $KSHOP_CACHE_DIR/images;
-prepare builds it (if needed) and prints its path. Every file, time and owner is fixed, so the
same inputs give the same image.

`)
		fl.PrintDefaults()
	}
	fl.StringVar(&o.base, "base", "", "base layer: distroless-base, distroless-static or scratch")
	fl.Var(&adds, "add", "HOST:/PATH[:MODE] puts the file HOST at /PATH, owned by root, MODE octal (default 0755 if HOST is executable, else 0644); repeatable")
	fl.StringVar(&o.entrypoint, "entrypoint", "", "the program the image runs, an absolute path")
	fl.Var(&argv, "arg", "an argument after the entrypoint (the image's Cmd); repeatable")
	fl.StringVar(&o.user, "user", fmt.Sprintf("%d:%d", nonrootID, nonrootID), "UID:GID the image runs as; numbers, so that Kubernetes can check runAsNonRoot (default distroless's nonroot)")
	fl.Var(&env, "env", "KEY=VALUE added to the environment (PATH and SSL_CERT_FILE are set as distroless sets them); repeatable")
	fl.StringVar(&o.workdir, "workdir", "", "working directory (default /home/nonroot for the nonroot user on a distroless base, as distroless's :nonroot images, else /)")
	fl.Var(&tags, "tag", "image reference, e.g. kshop.local/kshop/gateway:dev; repeatable")
	fl.StringVar(&o.out, "o", "", "the docker-archive tarball to write")
	fl.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir(), "where base layers are cached")
	fl.BoolVar(&o.prepare, "prepare", false, "only build (or find) the base layer, print its path")
	fl.BoolVar(&o.push, "push", false, "also push the image to the registry each -tag names (plain HTTP to one on this machine, HTTPS elsewhere; no credentials)")
	if err := fl.Parse(args); err != nil {
		return o, err
	}
	if fl.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q (see -h)", fl.Args())
	}
	o.args, o.env, o.tags = argv, env, tags

	if _, ok := bases[o.base]; !ok && o.base != "scratch" {
		return o, fmt.Errorf("-base %q: use distroless-base, distroless-static or scratch", o.base)
	}
	if o.prepare {
		if o.base == "scratch" {
			return o, errors.New("-prepare: scratch has no base layer")
		}
		return o, nil
	}
	for _, a := range adds {
		f, err := parseAdd(a)
		if err != nil {
			return o, err
		}
		o.adds = append(o.adds, f)
	}
	if o.entrypoint != "" && !path.IsAbs(o.entrypoint) {
		return o, fmt.Errorf("-entrypoint %q: give an absolute path", o.entrypoint)
	}
	if o.entrypoint == "" && len(o.args) == 0 {
		return o, errors.New("nothing to run: give -entrypoint (and -arg)")
	}
	if !regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`).MatchString(o.user) {
		return o, fmt.Errorf("-user %q: give UID:GID as numbers (Kubernetes cannot check runAsNonRoot against a name)", o.user)
	}
	for _, e := range o.env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return o, fmt.Errorf("-env %q: give KEY=VALUE", e)
		}
	}
	if o.workdir == "" {
		o.workdir = "/"
		if o.base != "scratch" && strings.HasPrefix(o.user+":", strconv.Itoa(nonrootID)+":") {
			o.workdir = "/home/nonroot"
		}
	}
	if len(o.tags) == 0 {
		return o, errors.New("give at least one -tag")
	}
	for _, t := range o.tags {
		if !validReference(t) {
			return o, fmt.Errorf("-tag %q: give a reference like registry.example/name:tag (lowercase name, a tag)", t)
		}
	}
	if o.out == "" && !o.push {
		return o, errors.New("give -o OUT.tar, -push, or both")
	}
	if o.push {
		for _, t := range o.tags {
			if _, err := parseRegistryRef(t); err != nil {
				return o, fmt.Errorf("-push: %w", err)
			}
		}
	}
	return o, nil
}

func parseAdd(spec string) (addedFile, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !path.IsAbs(parts[1]) || path.Clean(parts[1]) == "/" {
		return addedFile{}, fmt.Errorf("-add %q: give HOST:/PATH or HOST:/PATH:MODE", spec)
	}
	f := addedFile{host: parts[0], image: path.Clean(parts[1]), mode: -1}
	if len(parts) == 3 {
		mode, err := strconv.ParseInt(parts[2], 8, 32)
		if err != nil || mode < 0 || mode > 0o7777 {
			return addedFile{}, fmt.Errorf("-add %q: MODE must be octal, like 0755", spec)
		}
		f.mode = mode
	}
	return f, nil
}

// referencePattern is a Docker image reference with a tag and no digest: an
// optional registry host (a first component with a dot or a port, or
// localhost), lowercase path components, a tag.
var referencePattern = regexp.MustCompile(`^((localhost|[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)+)(:[0-9]+)?/|[a-zA-Z0-9-]+:[0-9]+/)?` +
	`[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func validReference(ref string) bool { return referencePattern.MatchString(ref) }

// defaultCacheDir is hack/cachedir.sh's choice, plus /images.
func defaultCacheDir() string {
	if dir := os.Getenv("KSHOP_CACHE_DIR"); dir != "" {
		return filepath.Join(dir, "images")
	}
	if os.Getuid() == 0 {
		return "/var/cache/kshop/images"
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "kshop", "images")
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	return build(o, &apt{log: stderr}, stdout, stderr)
}

// build makes the image o describes, with packages from src.
func build(o options, src packageSource, stdout, stderr io.Writer) error {
	config := imageConfig{
		Created:      layerTime.Format("2006-01-02T15:04:05Z"),
		Architecture: runtime.GOARCH,
		OS:           "linux",
	}
	var layers []layerFile
	if b, ok := bases[o.base]; ok {
		file, diffID, versions, err := baseLayer(b, src, o.cacheDir, stderr)
		if err != nil {
			return err
		}
		if o.prepare {
			fmt.Fprintln(stdout, file)
			return nil
		}
		layers = append(layers, layerFile{diffID: diffID, file: file})
		config.Config.Env = append(config.Config.Env, baseEnv...)
		config.History = append(config.History, history{Created: config.Created,
			CreatedBy: "ociimage -base " + b.name, Comment: "Debian packages: " + packageList(b.packages, versions)})
	} else {
		config.Config.Env = append(config.Config.Env, baseEnv[0]) // PATH only: scratch has no CA bundle
	}

	if len(o.adds) > 0 {
		fs := newRootfs()
		var added []string
		for _, a := range o.adds {
			data, err := os.ReadFile(a.host)
			if err != nil {
				return err
			}
			mode := a.mode
			if mode < 0 {
				info, err := os.Stat(a.host)
				if err != nil {
					return err
				}
				mode = 0o644
				if info.Mode()&0o111 != 0 {
					mode = 0o755
				}
			}
			if err := fs.addFile(a.image, mode, 0, 0, data); err != nil {
				return err
			}
			added = append(added, a.image)
		}
		var buf bytes.Buffer
		diffID, err := fs.write(&buf)
		if err != nil {
			return err
		}
		layers = append(layers, layerFile{diffID: diffID, data: buf.Bytes()})
		config.History = append(config.History, history{Created: config.Created, CreatedBy: "ociimage -add " + strings.Join(added, " ")})
	}
	if len(layers) == 0 {
		return errors.New("an image of nothing: give -add, or a distroless base")
	}

	config.Config.Env = mergeEnv(config.Config.Env, o.env)
	config.Config.User = o.user
	config.Config.WorkingDir = o.workdir
	if o.entrypoint != "" {
		config.Config.Entrypoint = []string{o.entrypoint}
	}
	config.Config.Cmd = o.args

	img, err := newImage(config, layers, o.tags)
	if err != nil {
		return err
	}
	if o.out != "" {
		if err := writeDockerArchive(o.out, img); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "ociimage: wrote %s (%s, image ID %s)\n", o.out, strings.Join(o.tags, ", "), img.configDigest)
	}
	if o.push {
		client := &http.Client{Timeout: 10 * time.Minute}
		for _, t := range o.tags {
			digest, err := push(client, img, t)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "ociimage: pushed %s (manifest %s)\n", t, digest)
		}
	}
	return nil
}

// mergeEnv sets each KEY=VALUE of extra, replacing the same KEY in env.
func mergeEnv(env, extra []string) []string {
	out := append([]string(nil), env...)
	for _, e := range extra {
		key, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, old := range out {
			if strings.HasPrefix(old, key+"=") {
				out[i], replaced = e, true
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}
