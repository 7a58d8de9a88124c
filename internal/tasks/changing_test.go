package tasks

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
)

// rewriting makes every upload of the files in rels see them change: each
// progress report of an upload writes a 4 KiB block of the file
// (a new letter each time), so the upload's end finds another mtime. A
// file rewritten by a goroutine instead could be left alone for a whole
// upload on a loaded machine. rels[rel] false stops the rewrites of rel.
func (e *env) rewriting(rels map[string]*atomic.Bool, size int) {
	var mu sync.Mutex
	writes := 0
	f := func(rel string, n int64) {
		on := rels[rel]
		if on == nil || !on.Load() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fh, err := os.OpenFile(filepath.Join(e.st.Root(), rel), os.O_WRONLY, 0)
		if err != nil {
			e.t.Error(err)
			return
		}
		defer fh.Close()
		writes++
		const block = 4 << 10
		off := writes * block % size
		if _, err := fh.WriteAt(bytes.Repeat([]byte{'a' + byte(writes%26)}, block), int64(off)); err != nil {
			e.t.Error(err)
		}
	}
	e.progress.Store(&f)
	e.t.Cleanup(func() { e.progress.Store(nil) })
}

// TestExportTaskFileChanging: an export task retries a file that changes
// while it is uploaded (bounded, with a short backoff). A file whose
// rewrites stop after the first retry is exported with its final content;
// a file rewritten throughout the task fails it after the retries, as
// FileChanged in the report; the others are exported.
func TestExportTaskFileChanging(t *testing.T) {
	var hot, settles atomic.Bool
	hot.Store(true)
	settles.Store(true)
	var mu sync.Mutex
	retries := map[string]int{}
	e := newEnv(t, func(c *Config) {
		c.OnRetry = func(rel string, retry int) {
			mu.Lock()
			retries[rel] = retry
			mu.Unlock()
			if rel == "ExtData/settles.bin" {
				settles.Store(false) // settles before the next attempt
			}
		}
	})
	const size = 4 << 20
	e.write("ExtData/calm.txt", "calm")
	e.write("ExtData/hot.bin", string(bytes.Repeat([]byte{'-'}, size)))
	e.write("ExtData/settles.bin", string(bytes.Repeat([]byte{'-'}, size)))
	e.rewriting(map[string]*atomic.Bool{"ExtData/hot.bin": &hot, "ExtData/settles.bin": &settles}, size)
	e.start()
	id := e.create(api.CreateDataRepositoryTaskRequest{
		Type:   api.TaskExportToRepository,
		Report: &api.CompletionReport{Enabled: true, Path: "s3://" + e.bucket + "/reports"},
	})
	tk := e.wait(id, api.TaskFailed)
	hot.Store(false)
	if tot, ok, failed := counts(tk); tot != 3 || ok != 2 || failed != 1 {
		t.Fatalf("counts: total %d ok %d failed %d, want 3 2 1", tot, ok, failed)
	}
	if body, _ := e.object("reports/" + id + "/failures.csv"); body != "ExtData/hot.bin,failed,FileChanged\r\n" {
		t.Fatalf("report %q", body)
	}
	mu.Lock()
	defer mu.Unlock()
	if retries["ExtData/hot.bin"] != changeRetries {
		t.Errorf("hot.bin retried %d times, want %d", retries["ExtData/hot.bin"], changeRetries)
	}
	if retries["ExtData/settles.bin"] == 0 {
		t.Error("settles.bin was never retried: its first upload did not see it change")
	}
	want, err := os.ReadFile(filepath.Join(e.st.Root(), "ExtData/settles.bin"))
	must(t, err)
	if got, _ := e.object(prefix + "settles.bin"); got != string(want) {
		t.Fatalf("settles.bin object (%d bytes) is not the file's final content", len(got))
	}
	if got, _ := e.object(prefix + "calm.txt"); got != "calm" {
		t.Fatalf("calm.txt object %q", got)
	}
}
