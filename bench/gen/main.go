// Command gen writes the benchmark data sets of bench/run.sh: the same tree,
// byte for byte, on every machine and every run, for every tool.
//
//	go run ./bench/gen -dataset small|large|large2|mixed|onegib -out DIR [-seed N]
//	go run ./bench/gen -dataset small -out DIR -verify   # compare DIR with the data set
//	go run ./bench/gen -dataset small -bytes             # print the total size
//
// Data sets (fixed default seeds, so names, sizes and content never change):
//
//	small  5,000 files of 64 KiB in 50 directories (100 per directory)
//	large  4 files of 512 MiB
//	mixed  200 files in 10 directories, sizes log-uniform in [1 KiB, 64 MiB]
//	large2 2 files of 256 MiB (issue 13 item 7)
//	onegib 1 file of 1 GiB (bench/mount's single sequential read)
//
// Content is incompressible: each file is the ChaCha8 stream of a key made
// from the seed, the data set and the file's index, so any file can be
// regenerated (and verified) on its own. Every file gets the same fixed
// modification time.
//
// Generation is idempotent: a manifest (DIR.manifest, beside the tree so
// that it is not synced with it) is written last, and a tree whose manifest
// matches the expected one and whose files have the expected sizes is
// reused as it is.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// fixedTime is the modification time of every generated file: older than any
// object the benchmark uploads, so a re-sync of an uploaded tree copies
// nothing.
var fixedTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// defaultSeeds are the seeds of the published results.
var defaultSeeds = map[string]uint64{"small": 1, "large": 2, "mixed": 3, "onegib": 4, "large2": 5}

type file struct {
	index int
	path  string // slash-separated, relative to the tree's root
	size  int64
}

type dataset struct {
	name  string
	seed  uint64
	files []file
}

func (d *dataset) bytes() int64 {
	var n int64
	for _, f := range d.files {
		n += f.size
	}
	return n
}

// manifest is the description the tree is checked against: a header naming
// the data set, then one "size path" line per file.
func (d *dataset) manifest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ferry bench data set: dataset=%s seed=%d files=%d bytes=%d mtime=%d\n",
		d.name, d.seed, len(d.files), d.bytes(), fixedTime.Unix())
	for _, f := range d.files {
		fmt.Fprintf(&b, "%d %s\n", f.size, f.path)
	}
	return b.String()
}

// layout returns the file list of a data set: names and sizes depend only on
// the name and the seed.
func layout(name string, seed uint64) (*dataset, error) {
	d := &dataset{name: name, seed: seed}
	switch name {
	case "small":
		for i := range 5000 {
			d.files = append(d.files, file{index: i, path: fmt.Sprintf("d%02d/f%04d.bin", i/100, i), size: 64 << 10})
		}
	case "large":
		for i := range 4 {
			d.files = append(d.files, file{index: i, path: fmt.Sprintf("large%d.bin", i), size: 512 << 20})
		}
	case "mixed":
		r := rand.New(rand.NewPCG(seed, 0x6d69786564)) // "mixed"
		lo, hi := math.Log(1<<10), math.Log(64<<20)
		for i := range 200 {
			size := int64(math.Round(math.Exp(lo + r.Float64()*(hi-lo))))
			d.files = append(d.files, file{index: i, path: fmt.Sprintf("m%d/f%03d.bin", i%10, i), size: size})
		}
	case "large2":
		for i := range 2 {
			d.files = append(d.files, file{index: i, path: fmt.Sprintf("large%d.bin", i), size: 256 << 20})
		}
	case "onegib":
		d.files = append(d.files, file{index: 0, path: "onegib.bin", size: 1 << 30})
	default:
		return nil, fmt.Errorf("unknown data set %q: use small, large, large2, mixed or onegib", name)
	}
	return d, nil
}

// stream returns the content of file f of d.
func (d *dataset) stream(f file) *rand.ChaCha8 {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], d.seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(f.index))
	copy(key[16:], d.name)
	return rand.NewChaCha8(key)
}

func main() {
	name := flag.String("dataset", "", "data set: small, large, large2, mixed or onegib")
	out := flag.String("out", "", "directory of the tree (created; its manifest is written to DIR.manifest)")
	seed := flag.Uint64("seed", 0, "seed (0 = the data set's fixed default)")
	verify := flag.Bool("verify", false, "compare the tree in -out with the data set, byte for byte, instead of writing it")
	printBytes := flag.Bool("bytes", false, "print the total size in bytes and exit")
	printFiles := flag.Bool("files", false, "print the number of files and exit")
	flag.Parse()
	if err := run(*name, *out, *seed, *verify, *printBytes, *printFiles); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(name, out string, seed uint64, verify, printBytes, printFiles bool) error {
	if seed == 0 {
		seed = defaultSeeds[name]
	}
	d, err := layout(name, seed)
	if err != nil {
		return err
	}
	switch {
	case printBytes:
		fmt.Println(d.bytes())
		return nil
	case printFiles:
		fmt.Println(len(d.files))
		return nil
	}
	if out == "" {
		return errors.New("-out DIR is required")
	}
	out = filepath.Clean(out)
	if verify {
		return d.verify(out)
	}
	return d.generate(out)
}

func (d *dataset) generate(out string) error {
	manifestPath := out + ".manifest"
	want := d.manifest()
	if have, err := os.ReadFile(manifestPath); err == nil && string(have) == want && d.sizesMatch(out) {
		fmt.Fprintf(os.Stderr, "gen: %s: %s already generated (%d files, %d bytes)\n", out, d.name, len(d.files), d.bytes())
		return nil
	}
	// The manifest goes first, so an interrupted run is never taken as done.
	if err := os.Remove(manifestPath); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	start := time.Now()
	err := d.parallel(func(f file, buf []byte) error {
		p := filepath.Join(out, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		w, err := os.Create(p)
		if err != nil {
			return err
		}
		src := d.stream(f)
		for left := f.size; left > 0; {
			n := int64(len(buf))
			if left < n {
				n = left
			}
			_, _ = src.Read(buf[:n]) // never fails
			if _, err := w.Write(buf[:n]); err != nil {
				w.Close()
				return err
			}
			left -= n
		}
		if err := w.Close(); err != nil {
			return err
		}
		return os.Chtimes(p, fixedTime, fixedTime)
	})
	if err != nil {
		return fmt.Errorf("generate %s: %w", out, err)
	}
	// Directories get the fixed time too, after their files are written.
	_ = filepath.WalkDir(out, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			_ = os.Chtimes(p, fixedTime, fixedTime)
		}
		return nil
	})
	if err := os.WriteFile(manifestPath, []byte(want), 0o644); err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "gen: %s: %s generated (%d files, %d bytes) in %.1fs, %.0f MB/s\n",
		out, d.name, len(d.files), d.bytes(), el, float64(d.bytes())/el/1e6)
	return nil
}

// sizesMatch reports whether every file of d exists in out with its size and
// no other regular file is there.
func (d *dataset) sizesMatch(out string) bool {
	want := make(map[string]int64, len(d.files))
	for _, f := range d.files {
		want[f.path] = f.size
	}
	n := 0
	err := filepath.WalkDir(out, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		info, err := e.Info()
		if err != nil {
			return err
		}
		if size, ok := want[filepath.ToSlash(rel)]; !ok || size != info.Size() {
			return errors.New("differs")
		}
		n++
		return nil
	})
	return err == nil && n == len(d.files)
}

// verify compares the tree in dir with the data set: same names, sizes and
// bytes, and no other files.
func (d *dataset) verify(dir string) error {
	if !d.sizesMatch(dir) {
		return fmt.Errorf("%s: names or sizes differ from data set %s", dir, d.name)
	}
	err := d.parallel(func(f file, buf []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		r, err := os.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		src := d.stream(f)
		half := len(buf) / 2
		exp, got := buf[:half], buf[half:]
		for off := int64(0); off < f.size; {
			n := int64(half)
			if f.size-off < n {
				n = f.size - off
			}
			_, _ = src.Read(exp[:n])
			if _, err := io.ReadFull(r, got[:n]); err != nil {
				return fmt.Errorf("%s: %w", f.path, err)
			}
			if !bytes.Equal(exp[:n], got[:n]) {
				return fmt.Errorf("%s: content differs near offset %d", f.path, off)
			}
			off += n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	fmt.Fprintf(os.Stderr, "gen: %s: matches %s (%d files, %d bytes)\n", dir, d.name, len(d.files), d.bytes())
	return nil
}

// parallel calls fn for every file, on one worker per CPU, each with its own
// 1 MiB buffer, and returns the first error.
func (d *dataset) parallel(fn func(f file, buf []byte) error) error {
	work := make(chan file)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for f := range work {
				if err := fn(f, buf); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, f := range d.files {
		select {
		case err := <-errs:
			close(work)
			wg.Wait()
			return err
		case work <- f:
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
