// Command ociimage assembles a FROM-scratch OCI image from prebuilt static
// binaries, with no container engine, and writes it as an image tarball that
// `ctr images import` (and `docker load`) read.
//
// The operator's image is the one the Dockerfile describes: /manager and
// /webhook from `make build-cross`, USER 65532:65532, ENTRYPOINT ["/manager"]:
//
//	ociimage -arch amd64 -tag example.invalid/gmsa-operator:dev -out img.tar \
//	  -file bin/linux-amd64/manager:/manager -file bin/linux-amd64/webhook:/webhook \
//	  -user 65532:65532 -entrypoint /manager
//
// OLM's images need more than one binary and some data: -dir copies a tree
// (a bundle's manifests/ and metadata/, a file-based catalog), -mkdir makes
// an empty directory (a writable /tmp: -mkdir /tmp:1777), -cmd and -label set
// the image's CMD and labels.
//
// The output is reproducible: fixed timestamps and owners, so the same
// inputs give the same digest. It prints the image's (manifest's) digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var fs, dirs, mkdirs, cmd, labels files
	out := flag.String("out", "", "image tarball to write")
	tag := flag.String("tag", "", "image reference stored in the tarball (registry/repo:tag)")
	arch := flag.String("arch", "amd64", "image architecture")
	user := flag.String("user", "", "USER of the image (uid:gid)")
	entrypoint := flag.String("entrypoint", "", "ENTRYPOINT (one path)")
	flag.Var(&fs, "file", "SRC:DST, a file copied into the image with mode 0755 (repeatable)")
	flag.Var(&dirs, "dir", "SRC:DST[:UID], a directory tree copied into the image, files 0644 (0755 if executable), owned by root or by UID:UID (repeatable)")
	flag.Var(&mkdirs, "mkdir", "DST:MODE, an empty directory with an octal mode, e.g. /tmp:1777 (repeatable)")
	flag.Var(&cmd, "cmd", "one argument of CMD (repeatable, in order)")
	flag.Var(&labels, "label", "KEY=VALUE, an image label (repeatable)")
	flag.Parse()
	if *out == "" || *tag == "" || len(fs)+len(dirs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ociimage -out FILE -tag REF -file SRC:DST [-file ...] [-dir SRC:DST ...] [-mkdir DST:MODE ...] [-user U:G] [-entrypoint PATH] [-cmd ARG ...] [-label K=V ...] [-arch ARCH]")
		os.Exit(2)
	}
	entries, err := collect(fs, dirs, mkdirs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
	digest, err := build(*out, *tag, *arch, *user, *entrypoint, cmd, labels, entries)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
	fmt.Println(digest)
}

func build(out, ref, arch, user, entrypoint string, cmd, labels []string, entries []entry) (string, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("tag %q: %w", ref, err)
	}
	layerTar, err := layer(entries)
	if err != nil {
		return "", err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, l)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.User = user
	if entrypoint != "" {
		cf.Config.Entrypoint = []string{entrypoint}
	}
	if len(cmd) > 0 {
		cf.Config.Cmd = cmd
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return "", fmt.Errorf("-label %q: want KEY=VALUE", l)
		}
		if cf.Config.Labels == nil {
			cf.Config.Labels = map[string]string{}
		}
		cf.Config.Labels[k] = v
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return "", err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// entry is one file or directory of the layer.
type entry struct {
	name string // without the leading /
	dir  bool
	mode int64
	src  string // a file's content
	uid  int    // owner (uid and gid)
}

// collect lists every entry of the layer: the -file and -dir files, the
// -mkdir directories, and every parent directory (0755), by name.
func collect(fileArgs, dirs, mkdirs []string) ([]entry, error) {
	byName := map[string]entry{}
	add := func(e entry) error {
		if old, ok := byName[e.name]; ok && (old.dir != e.dir || !e.dir) {
			return fmt.Errorf("/%s given twice", e.name)
		}
		byName[e.name] = e
		for p := path.Dir(e.name); p != "." && p != "/"; p = path.Dir(p) {
			if _, ok := byName[p]; !ok {
				byName[p] = entry{name: p, dir: true, mode: 0o755}
			}
		}
		return nil
	}
	for _, f := range fileArgs {
		src, dst, ok := strings.Cut(f, ":")
		if !ok || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("-file %q: want SRC:/DST", f)
		}
		if err := add(entry{name: strings.TrimPrefix(path.Clean(dst), "/"), mode: 0o755, src: src}); err != nil {
			return nil, err
		}
	}
	for _, d := range dirs {
		src, rest, ok := strings.Cut(d, ":")
		dst, owner, hasOwner := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("-dir %q: want SRC:/DST[:UID]", d)
		}
		uid := 0
		if hasOwner {
			v, err := strconv.Atoi(owner)
			if err != nil {
				return nil, fmt.Errorf("-dir %q: %w", d, err)
			}
			uid = v
		}
		err := filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			name := strings.TrimPrefix(path.Join(path.Clean(dst), filepath.ToSlash(rel)), "/")
			if name == "" {
				return nil
			}
			if de.IsDir() {
				return add(entry{name: name, dir: true, mode: 0o755, uid: uid})
			}
			if !de.Type().IsRegular() {
				return fmt.Errorf("%s: only regular files and directories are copied", p)
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return add(entry{name: name, mode: mode, src: p, uid: uid})
		})
		if err != nil {
			return nil, err
		}
	}
	for _, m := range mkdirs {
		dst, mode, ok := strings.Cut(m, ":")
		if !ok || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("-mkdir %q: want /DST:MODE", m)
		}
		v, err := strconv.ParseInt(mode, 8, 64)
		if err != nil {
			return nil, fmt.Errorf("-mkdir %q: %w", m, err)
		}
		name := strings.TrimPrefix(path.Clean(dst), "/")
		delete(byName, name) // an explicit mode wins over a parent's 0755
		if err := add(entry{name: name, dir: true, mode: v}); err != nil {
			return nil, err
		}
	}
	out := make([]entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// layer is one tar layer holding the entries, with a fixed timestamp.
func layer(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: time.Unix(0, 0),
			Format:  tar.FormatPAX,
		}
		var data []byte
		if e.dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		} else {
			var err error
			if data, err = os.ReadFile(e.src); err != nil {
				return nil, err
			}
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
