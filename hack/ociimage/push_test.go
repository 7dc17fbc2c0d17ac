package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// memoryRegistry keeps to the distribution API as a registry enforces it:
// uploads must carry the location's state and the right digest, and a
// manifest may only name blobs the repository has.
type memoryRegistry struct {
	mu        sync.Mutex
	blobs     map[string][]byte
	manifests map[string][]byte
	uploads   int
}

func (m *memoryRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	switch {
	case r.Method == http.MethodHead && strings.Contains(p, "/blobs/sha256:"):
		if _, ok := m.blobs[p[strings.LastIndex(p, "/")+1:]]; ok {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/blobs/uploads/"):
		w.Header().Set("Location", "/v2/"+p+"session-1?_state=opaque")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut && strings.Contains(p, "/blobs/uploads/session-1"):
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		if r.URL.Query().Get("_state") != "opaque" || r.URL.Query().Get("digest") != digest || r.ContentLength != int64(len(body)) {
			http.Error(w, `{"errors":[{"code":"DIGEST_INVALID"}]}`, http.StatusBadRequest)
			return
		}
		m.blobs[digest] = body
		m.uploads++
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPut && strings.Contains(p, "/manifests/"):
		body, _ := io.ReadAll(r.Body)
		var man ociManifest
		if r.Header.Get("Content-Type") != mediaTypeManifest || json.Unmarshal(body, &man) != nil {
			http.Error(w, `{"errors":[{"code":"MANIFEST_INVALID"}]}`, http.StatusBadRequest)
			return
		}
		for _, d := range append([]descriptor{man.Config}, man.Layers...) {
			if b, ok := m.blobs[d.Digest]; !ok || int64(len(b)) != d.Size {
				http.Error(w, `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}`, http.StatusBadRequest)
				return
			}
		}
		m.manifests[p] = body
		sum := sha256.Sum256(body)
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.WriteHeader(http.StatusCreated)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusMethodNotAllowed)
	}
}

func TestPushUploadsEachBlobOnceAndTheManifest(t *testing.T) {
	reg := &memoryRegistry{blobs: map[string][]byte{}, manifests: map[string][]byte{}}
	server := httptest.NewServer(reg)
	defer server.Close()
	host := strings.TrimPrefix(server.URL, "http://")

	dir := t.TempDir()
	o := options{base: "scratch", adds: []addedFile{{host: writeHostFile(t, dir, "app", "\x7fELF", 0o755), image: "/app", mode: -1}},
		entrypoint: "/app", user: "65532:65532", workdir: "/", tags: []string{host + "/kshop/gateway:one", host + "/kshop/gateway:two"}, push: true}
	must(t, build(o, nil, io.Discard, io.Discard))

	if reg.uploads != 2 {
		t.Errorf("%d uploads, want the config and the layer once each (the second tag finds them)", reg.uploads)
	}
	one, two := reg.manifests["kshop/gateway/manifests/one"], reg.manifests["kshop/gateway/manifests/two"]
	if one == nil || string(one) != string(two) {
		t.Fatalf("manifests: %q %q", one, two)
	}
	var man ociManifest
	must(t, json.Unmarshal(one, &man))
	if man.SchemaVersion != 2 || man.MediaType != mediaTypeManifest || man.Config.MediaType != mediaTypeConfig || len(man.Layers) != 1 || man.Layers[0].MediaType != mediaTypeLayer {
		t.Errorf("manifest %s", one)
	}
	var config imageConfig
	must(t, json.Unmarshal(reg.blobs[man.Config.Digest], &config))
	if config.RootFS.DiffIDs[0] != man.Layers[0].Digest || config.Config.User != "65532:65532" {
		t.Errorf("the config does not describe the pushed layer: %+v", config)
	}
}

func TestPushErrors(t *testing.T) {
	img, err := newImage(imageConfig{}, []layerFile{{diffID: "sha256:00", data: []byte("x")}}, nil)
	must(t, err)
	server := httptest.NewServer(&memoryRegistry{blobs: map[string][]byte{}, manifests: map[string][]byte{}})
	host := strings.TrimPrefix(server.URL, "http://")
	// A layer whose digest is wrong is refused by the registry, and said so.
	if _, err := push(server.Client(), img, host+"/x/y:z"); err == nil || !strings.Contains(err.Error(), "DIGEST_INVALID") {
		t.Errorf("err = %v", err)
	}
	server.Close()
	if _, err := push(http.DefaultClient, img, host+"/x/y:z"); err == nil || !strings.Contains(err.Error(), "is the registry") {
		t.Errorf("a stopped registry: %v", err)
	}
	for _, ref := range []string{"kshop/gateway:x", "127.0.0.1:5000/kshop/gateway"} {
		if _, err := parseRegistryRef(ref); err == nil {
			t.Errorf("%s accepted", ref)
		}
	}
	for ref, want := range map[string]string{
		"127.0.0.1:15000/kshop_gateway:abc": "http://127.0.0.1:15000/v2/kshop_gateway",
		"localhost:5000/a/b:c":              "http://localhost:5000/v2/a/b",
		"[::1]:5000/a:c":                    "http://[::1]:5000/v2/a",
		"registry.example/kshop/gateway:1":  "https://registry.example/v2/kshop/gateway",
	} {
		r, err := parseRegistryRef(ref)
		if err != nil || r.baseURL() != want {
			t.Errorf("%s: %s, %v; want %s", ref, r.baseURL(), err, want)
		}
	}
}
