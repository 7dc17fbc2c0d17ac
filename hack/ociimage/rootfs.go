package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// layerTime is every file's modification time and the image's creation time:
// the same inputs then give the same bytes, so the same digests, wherever and
// whenever they are built (distroless does the same).
var layerTime = time.Unix(0, 0).UTC()

// rootfs is one image layer being assembled in memory. Each path appears once;
// directories may be declared again (the last declaration's owner and mode
// win), any other path twice is a conflict, as it would be for dpkg.
type rootfs struct {
	entries map[string]*fsEntry
}

type fsEntry struct {
	typeflag byte
	mode     int64 // permission bits with setuid, setgid and sticky
	uid, gid int
	linkname string // symlink target, as written
	data     []byte
}

func newRootfs() *rootfs { return &rootfs{entries: map[string]*fsEntry{}} }

// layerPath turns "./usr/bin/", "/usr/bin" or "usr/bin" into "usr/bin", the
// form layer tarballs use; the root itself is "".
func layerPath(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

func (r *rootfs) has(p string) bool { _, ok := r.entries[layerPath(p)]; return ok }

func (r *rootfs) addDir(p string, mode int64, uid, gid int) error {
	p = layerPath(p)
	if p == "" {
		return nil
	}
	if old, ok := r.entries[p]; ok && old.typeflag != tar.TypeDir {
		return fmt.Errorf("%s: a directory where there is already a file", p)
	}
	r.entries[p] = &fsEntry{typeflag: tar.TypeDir, mode: mode & 0o7777, uid: uid, gid: gid}
	return nil
}

func (r *rootfs) addFile(p string, mode int64, uid, gid int, data []byte) error {
	return r.add(p, &fsEntry{typeflag: tar.TypeReg, mode: mode & 0o7777, uid: uid, gid: gid, data: data})
}

func (r *rootfs) addSymlink(p, target string) error {
	return r.add(p, &fsEntry{typeflag: tar.TypeSymlink, mode: 0o777, linkname: target})
}

func (r *rootfs) add(p string, e *fsEntry) error {
	p = layerPath(p)
	if p == "" {
		return errors.New("the root directory can only be a directory")
	}
	if _, ok := r.entries[p]; ok {
		return fmt.Errorf("%s is added twice", p)
	}
	r.entries[p] = e
	return nil
}

// addTar copies a tar stream (a Debian package's data, say) into the layer,
// keeping the entries keep accepts. Owners stay numeric: names mean nothing
// inside an image, whose /etc/passwd is ours.
func (r *rootfs) addTar(tr *tar.Reader, keep func(p string, isDir bool) bool) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := layerPath(hdr.Name)
		if p == "" || !keep(p, hdr.Typeflag == tar.TypeDir) {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = r.addDir(p, hdr.Mode, hdr.Uid, hdr.Gid)
		case tar.TypeReg:
			data, rerr := io.ReadAll(tr)
			if rerr != nil {
				return fmt.Errorf("%s: %w", p, rerr)
			}
			err = r.addFile(p, hdr.Mode, hdr.Uid, hdr.Gid, data)
		case tar.TypeSymlink:
			err = r.addSymlink(p, hdr.Linkname)
		case tar.TypeLink:
			// A copy instead of a link: a link must follow its target in the
			// stream, and the sorted order below does not promise that.
			target, ok := r.entries[layerPath(hdr.Linkname)]
			if !ok || target.typeflag != tar.TypeReg {
				return fmt.Errorf("%s: hard link to %s, which is not a file kept before it", p, hdr.Linkname)
			}
			err = r.addFile(p, hdr.Mode, hdr.Uid, hdr.Gid, target.data)
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", p, hdr.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

// write writes the layer as a tar stream: parents before children, sorted,
// every time fixed, and returns the stream's sha256 (the layer's diff ID).
// Parent directories nobody declared are created root-owned with mode 0755.
func (r *rootfs) write(w io.Writer) (diffID string, err error) {
	for p := range r.entries {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if e, ok := r.entries[dir]; !ok {
				r.entries[dir] = &fsEntry{typeflag: tar.TypeDir, mode: 0o755}
			} else if e.typeflag != tar.TypeDir {
				return "", fmt.Errorf("%s is under %s, which is not a directory", p, dir)
			}
		}
	}
	paths := make([]string, 0, len(r.entries))
	for p := range r.entries {
		paths = append(paths, p)
	}
	// A path sorts before every path it is a prefix of, so parents come first.
	sort.Strings(paths)

	hash := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(w, hash))
	for _, p := range paths {
		e := r.entries[p]
		hdr := &tar.Header{
			Typeflag: e.typeflag,
			Name:     p,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  layerTime,
			Linkname: e.linkname,
		}
		switch e.typeflag {
		case tar.TypeDir:
			hdr.Name += "/"
		case tar.TypeReg:
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if e.typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(hash.Sum(nil)), nil
}
