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
// The output is reproducible: fixed timestamps and owners, so the same
// binaries give the same digest. It prints the image's digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
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
	var fs files
	out := flag.String("out", "", "image tarball to write")
	tag := flag.String("tag", "", "image reference stored in the tarball (registry/repo:tag)")
	arch := flag.String("arch", "amd64", "image architecture")
	user := flag.String("user", "", "USER of the image (uid:gid)")
	entrypoint := flag.String("entrypoint", "", "ENTRYPOINT (one path)")
	flag.Var(&fs, "file", "SRC:DST, a file copied into the image with mode 0755 (repeatable)")
	flag.Parse()
	if *out == "" || *tag == "" || len(fs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ociimage -out FILE -tag REF -file SRC:DST [-file ...] [-user U:G] [-entrypoint PATH] [-arch ARCH]")
		os.Exit(2)
	}
	digest, err := build(*out, *tag, *arch, *user, *entrypoint, fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
	fmt.Println(digest)
}

func build(out, ref, arch, user, entrypoint string, fs []string) (string, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("tag %q: %w", ref, err)
	}
	layerTar, err := layer(fs)
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

// layer is one tar layer holding each SRC at DST, root-owned, mode 0755,
// with a fixed timestamp.
func layer(fs []string) ([]byte, error) {
	sort.Strings(fs)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range fs {
		src, dst, ok := strings.Cut(f, ":")
		if !ok || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("-file %q: want SRC:/DST", f)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     strings.TrimPrefix(dst, "/"),
			Mode:     0o755,
			Size:     int64(len(data)),
			ModTime:  time.Unix(0, 0),
			Format:   tar.FormatPAX,
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
