package tasks

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
)

// rewriter rewrites a store file in place, 4 KiB at a time from start to
// end, one letter per pass, until stop: many writes (each moving the
// mtime) land during any upload of it.
type rewriter struct {
	stop chan struct{}
	done chan struct{}
}

func (e *env) rewrite(rel string, size int) *rewriter {
	e.t.Helper()
	f, err := os.OpenFile(filepath.Join(e.st.Root(), rel), os.O_WRONLY, 0)
	must(e.t, err)
	w := &rewriter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer f.Close()
		const block = 4 << 10
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			off := i * block % size
			letter := 'a' + byte(i*block/size%26)
			if _, err := f.WriteAt(bytes.Repeat([]byte{letter}, block), int64(off)); err != nil {
				e.t.Error(err)
				return
			}
		}
	}()
	e.t.Cleanup(w.end)
	return w
}

// end stops the rewrites and waits for the last one.
func (w *rewriter) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// TestExportTaskFileChanging: an export task retries a file that changes
// while it is uploaded (bounded, with a short backoff). A file whose
// rewrites stop after the first retry is exported with its final content;
// a file rewritten throughout the task fails it after the retries, as
// FileChanged in the report; the others are exported.
func TestExportTaskFileChanging(t *testing.T) {
	e := newEnv(t)
	const size = 4 << 20
	e.write("ExtData/calm.txt", "calm")
	e.write("ExtData/hot.bin", string(bytes.Repeat([]byte{'-'}, size)))
	e.write("ExtData/settles.bin", string(bytes.Repeat([]byte{'-'}, size)))
	hot := e.rewrite("ExtData/hot.bin", size)
	settles := e.rewrite("ExtData/settles.bin", size)

	var mu sync.Mutex
	retries := map[string]int{}
	testRetry = func(rel string, retry int) {
		mu.Lock()
		retries[rel] = retry
		mu.Unlock()
		if rel == "ExtData/settles.bin" {
			settles.end() // settles before the next attempt
		}
	}
	t.Cleanup(func() { testRetry = nil })
	e.start()
	id := e.create(api.CreateDataRepositoryTaskRequest{
		Type:   api.TaskExportToRepository,
		Report: &api.CompletionReport{Enabled: true, Path: "s3://" + e.bucket + "/reports"},
	})
	tk := e.wait(id, api.TaskFailed)
	hot.end()
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
