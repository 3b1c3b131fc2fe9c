package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// SecretVolume is a directory laid out as the kubelet lays out a mounted
// Secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/. Update writes
// a new timestamped directory, renames a new symlink over ..data and
// removes the old directory (the kubelet's AtomicWriter), so a reader sees
// either the old or the new files, never a mix.
type SecretVolume struct {
	Dir string
	gen int
}

// NewSecretVolume lays out files in dir.
func NewSecretVolume(dir string, files map[string][]byte) (*SecretVolume, error) {
	v := &SecretVolume{Dir: dir}
	if err := v.Update(files); err != nil {
		return nil, err
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Update swaps in new contents for the same file names.
func (v *SecretVolume) Update(files map[string][]byte) error {
	v.gen++
	ts := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), v.gen)
	if err := os.Mkdir(filepath.Join(v.Dir, ts), 0o755); err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(v.Dir, ts, name), content, 0o644); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(v.Dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(v.Dir, "..data_tmp")); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(v.Dir, "..data_tmp"), filepath.Join(v.Dir, "..data")); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(v.Dir, old))
	}
	return nil
}
