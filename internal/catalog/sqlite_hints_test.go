package catalog_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// TestCrashEnqueueHints is the catalog half of at-least-once event intake
// (internal/events answers a sender only after EnqueueHints returned): a
// process enqueues hints from several goroutines, some of them claimed
// right away, and reports each acknowledged batch; it is killed with
// SIGKILL mid-stream; every acknowledged hint must be pending after
// reopening, and claimable once the dead process's leases ended.
func TestCrashEnqueueHints(t *testing.T) {
	if dir := os.Getenv("FERRY_HINTS_CRASH_CHILD"); dir != "" {
		hintsCrashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashEnqueueHints$")
	cmd.Env = append(os.Environ(), "FERRY_HINTS_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 500
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[k] = true
		}
		if len(acked) >= killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed || err == nil {
		t.Fatalf("child ended on its own (%v) after %d acks", err, len(acked))
	}
	// Open at a time after every lease the child could have taken.
	later := func() time.Time { return time.Now().Add(time.Hour) }
	c := openSQLite(t, dir, catalog.Options{Now: later})
	defer c.Close()
	ctx := context.Background()
	present := 0
	for {
		hs, err := c.ClaimHints(ctx, "after", 1000, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if acked[h.Key] {
				present++
			}
		}
		if len(hs) < 1000 {
			break
		}
	}
	if present != len(acked) {
		t.Fatalf("%d of %d acknowledged hints claimable after kill -9", present, len(acked))
	}
	d, err := c.HintDepth(ctx)
	if err != nil || d < int64(present) {
		t.Fatalf("depth %d (%v) below the %d hints present", d, err, present)
	}
	t.Logf("%d acknowledged hints, all present after kill -9 (depth %d)", len(acked), d)
}

func hintsCrashChild(dir string) {
	c, err := catalog.Open(context.Background(), "sqlite://"+filepath.Join(dir, "catalog.db"), catalog.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				var batch []catalog.ImportHint
				for j := range 4 {
					batch = append(batch, catalog.ImportHint{Source: "test", Bucket: "b", Key: fmt.Sprintf("g%d/k%06d-%d", g, i, j),
						Kind: catalog.HintCreated, Sequencer: fmt.Sprintf("%X", i+1), Size: -1})
				}
				if _, err := c.EnqueueHints(context.Background(), batch...); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				if g%2 == 1 {
					// An importer claims some and dies before completing.
					if _, err := c.ClaimHints(context.Background(), "dead", 2, time.Minute); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(5)
					}
				}
				mu.Lock()
				for _, h := range batch {
					fmt.Fprintf(w, "ack %s\n", h.Key)
				}
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
