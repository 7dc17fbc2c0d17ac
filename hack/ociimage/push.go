package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The OCI media types of what push uploads. Layers go uncompressed, as they are
// written: the registry is on this machine, and containerd reads plain tar.
const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type ociManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// registryRef is a reference split for the distribution API.
type registryRef struct {
	host, repository, tag string
}

func (r registryRef) baseURL() string {
	scheme := "https"
	if isLoopback(r.host) {
		scheme = "http" // a registry on this machine, as containerd and skaffold also assume
	}
	return scheme + "://" + r.host + "/v2/" + r.repository
}

func parseRegistryRef(ref string) (registryRef, error) {
	host, rest, ok := strings.Cut(ref, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return registryRef{}, fmt.Errorf("%s names no registry: push needs one, like 127.0.0.1:15000/kshop/gateway:dev", ref)
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return registryRef{}, fmt.Errorf("%s has no tag", ref)
	}
	return registryRef{host: host, repository: rest[:i], tag: rest[i+1:]}, nil
}

func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// push uploads the image to the registry its reference names, with the
// distribution API (no credentials: the test cluster's registry has none),
// and returns the manifest's digest.
func push(client *http.Client, img *builtImage, ref string) (string, error) {
	r, err := parseRegistryRef(ref)
	if err != nil {
		return "", err
	}
	manifest := ociManifest{SchemaVersion: 2, MediaType: mediaTypeManifest,
		Config: descriptor{MediaType: mediaTypeConfig, Digest: img.configDigest, Size: int64(len(img.config))}}
	if err := uploadBlob(client, r, img.configDigest, int64(len(img.config)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(img.config)), nil
	}); err != nil {
		return "", err
	}
	for _, l := range img.layers {
		body, size, err := l.open()
		if err != nil {
			return "", err
		}
		body.Close()
		manifest.Layers = append(manifest.Layers, descriptor{MediaType: mediaTypeLayer, Digest: l.diffID, Size: size})
		if err := uploadBlob(client, r, l.diffID, size, func() (io.ReadCloser, error) {
			body, _, err := l.open()
			return body, err
		}); err != nil {
			return "", err
		}
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodPut, r.baseURL()+"/manifests/"+r.tag, bytes.NewReader(manifestJSON))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mediaTypeManifest)
	resp, err := expect(client, req, http.StatusCreated)
	if err != nil {
		return "", fmt.Errorf("pushing the manifest of %s: %w", ref, err)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

// uploadBlob uploads one blob unless the repository has it: a monolithic
// upload (POST for a location, PUT the bytes with their digest).
func uploadBlob(client *http.Client, r registryRef, digest string, size int64, open func() (io.ReadCloser, error)) error {
	head, err := http.NewRequest(http.MethodHead, r.baseURL()+"/blobs/"+digest, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(head)
	if err != nil {
		return fmt.Errorf("is the registry %s running? %w", r.host, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}

	start, err := http.NewRequest(http.MethodPost, r.baseURL()+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err = expect(client, start, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("starting the upload of %s: %w", digest, err)
	}
	location, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("the registry gave no upload location for %s", digest)
	}
	q := location.Query()
	q.Set("digest", digest)
	location.RawQuery = q.Encode()

	body, err := open()
	if err != nil {
		return err
	}
	defer body.Close()
	put, err := http.NewRequest(http.MethodPut, location.String(), body)
	if err != nil {
		return err
	}
	put.ContentLength = size
	put.Header.Set("Content-Type", "application/octet-stream")
	if _, err := expect(client, put, http.StatusCreated); err != nil {
		return fmt.Errorf("uploading %s: %w", digest, err)
	}
	return nil
}

// expect sends req and fails unless the answer has the status want; the body
// of a failure (the registry's error JSON) goes into the error.
func expect(client *http.Client, req *http.Request, want int) (*http.Response, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s %s: %s %s", req.Method, redact(req.URL), resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// redact drops the query (upload state) from a URL shown in an error.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.String()
}
