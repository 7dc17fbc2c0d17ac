package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path"
	"testing"
)

// imageArchive is a docker-archive read back: what `ctr images import` sees.
type imageArchive struct {
	manifest manifestEntry
	config   imageConfig
	// files is the image's filesystem, the layers applied in order.
	files map[string]*tar.Header
	data  map[string][]byte
}

// readArchive opens a docker-archive and checks what an importer checks: one
// manifest entry, a config named by its digest, layers whose digests are the
// config's diff IDs.
func readArchive(t *testing.T, file string) *imageArchive {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if blobs[hdr.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	var manifest []manifestEntry
	if err := json.Unmarshal(blobs["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v, %d entries", err, len(manifest))
	}
	img := &imageArchive{manifest: manifest[0], files: map[string]*tar.Header{}, data: map[string][]byte{}}
	configJSON := blobs[img.manifest.Config]
	if sum := sha256.Sum256(configJSON); hex.EncodeToString(sum[:])+".json" != img.manifest.Config {
		t.Fatalf("config %s does not have that digest", img.manifest.Config)
	}
	if err := json.Unmarshal(configJSON, &img.config); err != nil {
		t.Fatal(err)
	}
	if len(img.config.RootFS.DiffIDs) != len(img.manifest.Layers) {
		t.Fatalf("%d diff IDs for %d layers", len(img.config.RootFS.DiffIDs), len(img.manifest.Layers))
	}
	for i, name := range img.manifest.Layers {
		layer, ok := blobs[name]
		if !ok {
			t.Fatalf("layer %s is not in the archive", name)
		}
		if sum := sha256.Sum256(layer); "sha256:"+hex.EncodeToString(sum[:]) != img.config.RootFS.DiffIDs[i] {
			t.Fatalf("layer %s does not have the digest %s", name, img.config.RootFS.DiffIDs[i])
		}
		lr := tar.NewReader(bytes.NewReader(layer))
		for {
			hdr, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := layerPath(hdr.Name)
			img.files[p] = hdr
			if hdr.Typeflag == tar.TypeReg {
				if img.data[p], err = io.ReadAll(lr); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return img
}

// resolve follows symbolic links inside the image, as the kernel would in a
// container, and returns the final path and its entry (nil if missing).
func (img *imageArchive) resolve(p string) (string, *tar.Header) {
	return img.resolveDepth(layerPath(p), 0)
}

func (img *imageArchive) resolveDepth(p string, depth int) (string, *tar.Header) {
	if depth > 40 {
		return p, nil // a loop
	}
	// A link may be anywhere on the way: resolve the parent first.
	if dir, base := path.Split(p); dir != "" {
		resolvedDir, hdr := img.resolveDepth(layerPath(dir), depth+1)
		if hdr == nil {
			return p, nil
		}
		p = path.Join(resolvedDir, base)
	}
	hdr, ok := img.files[p]
	if !ok {
		return p, nil
	}
	if hdr.Typeflag != tar.TypeSymlink {
		return p, hdr
	}
	target := hdr.Linkname
	if !path.IsAbs(target) {
		target = path.Join(path.Dir(p), target)
	}
	return img.resolveDepth(layerPath(target), depth+1)
}

func TestArchiveIsConsistentAndDeterministic(t *testing.T) {
	dir := t.TempDir()
	app := writeHostFile(t, dir, "app", "#!binary", 0o755)
	o := options{base: "scratch", adds: []addedFile{{host: app, image: "/usr/local/bin/app", mode: -1}},
		entrypoint: "/usr/local/bin/app", args: []string{"-conf", "/etc/app.conf"}, user: "0:0", workdir: "/",
		env: []string{"MODE=test"}, tags: []string{"kshop.local/test/app:1", "kshop.local/test/app:latest"}}

	var ids []string
	for _, name := range []string{"one.tar", "two.tar"} {
		o.out = dir + "/" + name
		if err := build(o, nil, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		img := readArchive(t, o.out)
		ids = append(ids, img.manifest.Config)

		if got := img.manifest.RepoTags; len(got) != 2 || got[0] != o.tags[0] || got[1] != o.tags[1] {
			t.Errorf("RepoTags %q", got)
		}
		c := img.config
		if c.OS != "linux" || c.Architecture == "" || c.Created != "1970-01-01T00:00:00Z" {
			t.Errorf("platform and time: %+v", c)
		}
		if c.Config.User != "0:0" || c.Config.WorkingDir != "/" || len(c.Config.Entrypoint) != 1 || c.Config.Entrypoint[0] != "/usr/local/bin/app" ||
			len(c.Config.Cmd) != 2 || c.Config.Cmd[1] != "/etc/app.conf" {
			t.Errorf("config %+v", c.Config)
		}
		if len(c.Config.Env) != 2 || c.Config.Env[1] != "MODE=test" {
			t.Errorf("env %q", c.Config.Env)
		}
		hdr := img.files["usr/local/bin/app"]
		if hdr == nil || hdr.Mode != 0o755 || hdr.Uid != 0 || !hdr.ModTime.Equal(layerTime) || string(img.data["usr/local/bin/app"]) != "#!binary" {
			t.Fatalf("the added file: %+v", hdr)
		}
		for _, parent := range []string{"usr", "usr/local", "usr/local/bin"} {
			if h := img.files[parent]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o755 {
				t.Errorf("parent directory %s: %+v", parent, h)
			}
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("the same inputs gave two images: %s and %s", ids[0], ids[1])
	}
}

func TestArchiveRefusesADamagedCachedLayer(t *testing.T) {
	dir := t.TempDir()
	layer := writeHostFile(t, dir, "layer.tar", "not what was hashed", 0o644)
	img, err := newImage(imageConfig{}, []layerFile{{diffID: "sha256:00", file: layer}}, []string{"a/b:c"})
	must(t, err)
	if err := writeDockerArchive(dir+"/out.tar", img); err == nil {
		t.Fatal("a layer whose bytes do not match its digest was written")
	}
	if _, serr := os.Stat(dir + "/out.tar"); !os.IsNotExist(serr) {
		t.Errorf("a failed write left %s behind", dir+"/out.tar")
	}
}

func writeHostFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := dir + "/" + name
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
