package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// imageConfig is the image configuration (the OCI image spec's config, which
// Docker and containerd share).
type imageConfig struct {
	Created      string        `json:"created"`
	Architecture string        `json:"architecture"`
	OS           string        `json:"os"`
	Config       runtimeConfig `json:"config"`
	RootFS       rootFS        `json:"rootfs"`
	History      []history     `json:"history"`
}

type runtimeConfig struct {
	User       string   `json:"User,omitempty"`
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
	Comment   string `json:"comment,omitempty"`
}

// manifestEntry is one image in a docker-archive's manifest.json.
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// layerFile is an uncompressed layer tarball: a cached file or bytes built now.
type layerFile struct {
	diffID string
	file   string // read from here when data is nil
	data   []byte
}

func (l layerFile) open() (io.ReadCloser, int64, error) {
	if l.data != nil {
		return io.NopCloser(bytes.NewReader(l.data)), int64(len(l.data)), nil
	}
	f, err := os.Open(l.file)
	if err != nil {
		return nil, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, info.Size(), nil
}

// builtImage is an image ready to be written or pushed: its config as bytes
// (its digest is the image ID) and its layers.
type builtImage struct {
	config       []byte
	configDigest string
	layers       []layerFile
	tags         []string
}

func newImage(config imageConfig, layers []layerFile, tags []string) (*builtImage, error) {
	config.RootFS = rootFS{Type: "layers"}
	for _, l := range layers {
		config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, l.diffID)
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(configJSON)
	return &builtImage{config: configJSON, configDigest: "sha256:" + hex.EncodeToString(sum[:]), layers: layers, tags: tags}, nil
}

// writeDockerArchive writes the image as `docker save` does (manifest.json,
// the config as <digest>.json, each layer as <diff id>/layer.tar), the form
// `docker load` and `ctr images import` read. It writes to a temporary file and
// renames it, so OUT is either the old or the whole new image.
func writeDockerArchive(out string, img *builtImage) error {
	manifest := []manifestEntry{{Config: strings.TrimPrefix(img.configDigest, "sha256:") + ".json", RepoTags: img.tags}}
	for _, l := range img.layers {
		manifest[0].Layers = append(manifest[0].Layers, strings.TrimPrefix(l.diffID, "sha256:")+"/layer.tar")
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".image-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	write := func(name string, size int64, body io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: layerTime}); err != nil {
			return err
		}
		_, err := io.Copy(tw, body)
		return err
	}
	seen := map[string]bool{}
	for i, l := range img.layers {
		if seen[l.diffID] {
			continue // the same layer twice is stored once
		}
		seen[l.diffID] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(l.diffID, "sha256:") + "/", Mode: 0o755, ModTime: layerTime}); err != nil {
			return err
		}
		body, size, err := l.open()
		if err != nil {
			return err
		}
		// The config promises this digest: check the bytes really have it (a
		// cached layer could have been damaged since it was written).
		hash := sha256.New()
		err = write(manifest[0].Layers[i], size, io.TeeReader(body, hash))
		body.Close()
		if err != nil {
			return fmt.Errorf("writing layer %s: %w", l.diffID, err)
		}
		if got := "sha256:" + hex.EncodeToString(hash.Sum(nil)); got != l.diffID {
			return fmt.Errorf("layer %s has digest %s, not %s: delete it and build again", l.file, got, l.diffID)
		}
	}
	if err := write(manifest[0].Config, int64(len(img.config)), bytes.NewReader(img.config)); err != nil {
		return err
	}
	if err := write("manifest.json", int64(len(manifestJSON)), bytes.NewReader(manifestJSON)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
