package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestNodeKilledDuringExports: two nodes (two `ferry mount` processes,
// each with its own mount point and runtime directory) over one store
// directory and one PostgreSQL catalog. Node A writes files; it is killed
// with -9 while its closes are journaled and exported. Node B, which
// wrote nothing, exports every file A acknowledged, byte-identical, once
// A's session expires: `ferry hsm wait` on B is the barrier, and B reads
// every file back through its own mount.
func TestNodeKilledDuringExports(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	catalogURL := testutil.PostgresDatabase(t)
	store := t.TempDir()
	nodeArgs := []string{"--catalog", catalogURL, "--session-ttl", "3s"}
	a, b := newDaemon(t, srv, store), newDaemon(t, srv, store)
	a.extraArgs, b.extraArgs = nodeArgs, nodeArgs
	a.mount()
	// The association exists before B starts (a node learns of
	// associations made on another node only at its start, today).
	a.associate("/data", "s3://"+bucket+"/nodes/")
	b.mount()
	if a.id != b.id {
		t.Fatalf("two nodes over one store and catalog: file systems %s and %s", a.id, b.id)
	}

	sums := map[string][32]byte{}
	inFlight := map[string]bool{} // written when the kill came: content not known
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		dir := filepath.Join(a.mp, "data", fmt.Sprintf("w%d", w))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				// New files and O_TRUNC rewrites of earlier ones.
				name := fmt.Sprintf("f%04d", i)
				if i > 3 && rng.IntN(3) == 0 {
					name = fmt.Sprintf("f%04d", rng.IntN(i))
				}
				body := make([]byte, rng.IntN(2<<20))
				for j := range body {
					body[j] = byte(rng.Uint32())
				}
				p := fmt.Sprintf("w%d/%s", w, name)
				mu.Lock()
				inFlight[p] = true
				mu.Unlock()
				if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
					return // the node died under the write: not acknowledged
				}
				mu.Lock()
				sums[p] = sha256.Sum256(body)
				delete(inFlight, p)
				mu.Unlock()
			}
		})
	}
	testutil.Eventually(t, 60*time.Second, "40 files acknowledged on node A", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sums) >= 40
	})
	a.kill9()
	cancel()
	wg.Wait()
	// A file being rewritten when the kill came has no known content
	// (at most one per writer); every other one reads back on node B.
	mu.Lock()
	defer mu.Unlock()
	for p := range inFlight {
		delete(sums, p)
	}
	for p, want := range sums {
		if got, err := fileSum(filepath.Join(b.mp, "data", p)); err != nil || got != want {
			t.Errorf("%s: acknowledged on node A, reads on node B as %s (%v), want %s", p, short(got), err, short(want))
		}
	}
	r := b.run("hsm", "wait", "--timeout", "120s", filepath.Join(b.mp, "data"))
	if r.code != 0 {
		t.Fatalf("hsm wait on node B: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lost := 0
	for p, want := range sums {
		if got, ok := objectSum(t, srv, bucket, "nodes/"+p); !ok || got != want {
			t.Errorf("%s: acknowledged on node A before its kill; object on node B's watch %v (found %v), want %s", p, short(got), ok, short(want))
			lost++
		}
	}
	t.Logf("%d files acknowledged on A before its kill -9; %d not exported by B", len(sums), lost)
}
