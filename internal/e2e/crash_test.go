package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// ledger records what the workload knows about each file: the sha256 of
// its content as of its last acknowledged close (or rename), or that its
// last operation failed (the daemon died under it) so its content is not
// known.
type ledger struct {
	mu    sync.Mutex
	sums  map[string][32]byte // path under the association → acknowledged content
	dirty map[string]bool     // last operation on the path failed
	// alt: the path the file has if a directory rename that failed (the
	// daemon died under it) did not happen; sums has the renamed path.
	alt map[string]string
	// from: a renamed directory's name before the rename (for failure
	// reports: the chain of names a file's directory had).
	from    map[string]string
	acks    int
	renames int // directory renames acknowledged
}

// moveTree records a rename of directory from to to: every path below it
// moves. maybe: the rename failed, so it may not have happened.
func (l *ledger) moveTree(from, to string, maybe bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !maybe {
		l.renames++
	}
	l.from[to] = from
	for p, sum := range l.sums {
		if rest, ok := strings.CutPrefix(p, from+"/"); ok {
			np := to + "/" + rest
			l.sums[np] = sum
			delete(l.sums, p)
			if l.dirty[p] {
				l.dirty[np] = true
				delete(l.dirty, p)
			}
			if maybe {
				l.alt[np] = p
			}
		}
	}
}

// history lists the names directory dir had before, newest first.
func (l *ledger) history(dir string) string {
	var names []string
	for d, ok := l.from[dir]; ok && len(names) < 100; d, ok = l.from[d] {
		names = append(names, d)
	}
	if len(names) == 0 {
		return ""
	}
	return "; its directory was renamed from " + strings.Join(names, " ← ")
}

func (l *ledger) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks
}

func (l *ledger) ack(p string, sum [32]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sums[p], l.acks = sum, l.acks+1
	delete(l.dirty, p)
}

func (l *ledger) gone(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.sums, p)
	delete(l.dirty, p)
}

func (l *ledger) failed(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirty[p] = true
}

// worker writes files in a directory of its own below dir until ctx ends
// or an operation fails (the daemon was killed): new files, rewrites of its
// own files (O_TRUNC), `write tmp; rename tmp final` replacements, and
// renames of its directory (the pending entries of everything below move).
// A sum is recorded only once close (or the rename) returned without error.
func worker(ctx context.Context, l *ledger, mnt, dir string, rng *rand.Rand, seq *int) {
	*seq++
	sub := fmt.Sprintf("%s/r%05d", dir, *seq)
	if err := os.Mkdir(filepath.Join(mnt, sub), 0o755); err != nil {
		return
	}
	write := func(rel string, body []byte) error {
		f, err := os.OpenFile(filepath.Join(mnt, rel), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		for off := 0; off < len(body); off += 256 << 10 {
			if _, err := f.Write(body[off:min(off+256<<10, len(body))]); err != nil {
				f.Close()
				return err
			}
		}
		return f.Close()
	}
	var mine []string
	for ctx.Err() == nil {
		n := rng.IntN(3 << 20)
		switch r := rng.IntN(24); {
		case r < 6:
			n = rng.IntN(4096)
		case r == 6: // multipart upload (parts of 8 MiB)
			n = 9<<20 + rng.IntN(12<<20)
		}
		body := make([]byte, n)
		for i := 0; i < n; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				body[i+j] = byte(v >> (8 * j))
			}
		}
		sum := sha256.Sum256(body)
		switch op := rng.IntN(10); {
		case op < 6 || len(mine) == 0: // a new file
			*seq++
			rel := fmt.Sprintf("%s/f%05d", sub, *seq)
			if err := write(rel, body); err != nil {
				l.failed(rel)
				return
			}
			l.ack(rel, sum)
			mine = append(mine, rel)
		case op < 8: // rewrite one in place
			rel := mine[rng.IntN(len(mine))]
			if err := write(rel, body); err != nil {
				l.failed(rel)
				return
			}
			l.ack(rel, sum)
		case op == 8 && rng.IntN(2) == 0: // rename the directory
			*seq++
			to := fmt.Sprintf("%s/r%05d", dir, *seq)
			if err := os.Rename(filepath.Join(mnt, sub), filepath.Join(mnt, to)); err != nil {
				l.moveTree(sub, to, true)
				return
			}
			l.moveTree(sub, to, false)
			for i, p := range mine {
				mine[i] = to + strings.TrimPrefix(p, sub)
			}
			sub = to
		default: // replace one with write tmp; rename tmp final
			rel := mine[rng.IntN(len(mine))]
			tmp := rel + ".tmp"
			if err := write(tmp, body); err != nil {
				l.failed(tmp)
				return
			}
			if err := os.Rename(filepath.Join(mnt, tmp), filepath.Join(mnt, rel)); err != nil {
				l.failed(tmp)
				l.failed(rel)
				return
			}
			l.gone(tmp)
			l.ack(rel, sum)
		}
	}
}

// TestCrashKill9 is invariant 1 (docs/invariants.md) across kill -9: a
// write-heavy workload through `ferry mount`, the daemon killed with SIGKILL
// at ≥ 20 random moments and started again over the same store; afterwards
// `ferry hsm wait` drains the journal and every file whose close returned
// before the kill is in the bucket byte-identical (sha256).
func TestCrashKill9(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.mount()
	d.associate("/data", "s3://"+bucket+"/crash/")
	kills := 20
	if testing.Short() {
		kills = 3
	}
	l := &ledger{sums: map[string][32]byte{}, dirty: map[string]bool{}, alt: map[string]string{}, from: map[string]string{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	seqs := make([]int, 4)
	for k := range kills + 1 {
		for w := range seqs {
			if err := os.MkdirAll(filepath.Join(d.mp, "data", fmt.Sprintf("w%d", w)), 0o755); err != nil {
				t.Fatalf("round %d: %v", k, err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range seqs {
			wg.Add(1)
			wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
			go func() {
				defer wg.Done()
				worker(ctx, l, d.mp, fmt.Sprintf("data/w%d", w), wrng, &seqs[w])
			}()
		}
		// The kill point: after a random number of acknowledged closes
		// (1–24), while writes, closes, journal appends and exports of
		// the other workers are in flight.
		target := l.acked() + 1 + rng.IntN(24)
		testutil.Eventually(t, 60*time.Second, fmt.Sprintf("round %d: %d acknowledged closes", k, target), func() bool {
			return l.acked() >= target
		})
		if k == kills {
			// The last round ends cleanly; then everything is waited for.
			cancel()
			wg.Wait()
			break
		}
		d.kill9()
		wg.Wait()
		cancel()
		d.mount()
	}
	l.mu.Lock()
	t.Logf("%d kills, %d acknowledged closes, %d directory renames, %d files expected, %d uncertain, %d maybe renamed",
		kills, l.acks, l.renames, len(l.sums), len(l.dirty), len(l.alt))
	l.mu.Unlock()
	r := d.run("hsm", "wait", "--timeout", "180s", filepath.Join(d.mp, "data"))
	if r.code != 0 {
		t.Fatalf("hsm wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var paths []string
	for p := range l.sums {
		if !l.dirty[p] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	// whereIs says where in the bucket content sum is, if anywhere (a
	// missing object's content under another key: a move that went wrong).
	var bySum map[[32]byte][]string
	whereIs := func(sum [32]byte) string {
		if bySum == nil {
			bySum = map[[32]byte][]string{}
			err := srv.Client(t).List(context.Background(), bucket, s3x.ListOptions{Prefix: "crash/"}, func(o s3x.Object) error {
				if s, ok := objectSum(t, srv, bucket, o.Key); ok {
					bySum[s] = append(bySum[s], o.Key)
				}
				return nil
			})
			if err != nil {
				return fmt.Sprintf(" (listing the bucket: %v)", err)
			}
		}
		if ks := bySum[sum]; len(ks) > 0 {
			return fmt.Sprintf("; its content is under %s", strings.Join(ks, ", "))
		}
		return "; its content is nowhere in the bucket"
	}
	lost := 0
	for _, p := range paths {
		want := l.sums[p]
		got, ok := objectSum(t, srv, bucket, "crash/"+p[len("data/"):])
		local, lerr := fileSum(filepath.Join(d.mp, p))
		if old, maybe := l.alt[p]; maybe && errors.Is(lerr, os.ErrNotExist) {
			// The failed directory rename did not happen.
			got, ok = objectSum(t, srv, bucket, "crash/"+old[len("data/"):])
			local, lerr = fileSum(filepath.Join(d.mp, old))
		}
		switch {
		case !ok:
			t.Errorf("%s: closed before a kill, no object%s%s", p, whereIs(want), l.history(path.Dir(p)))
			lost++
		case got != want:
			t.Errorf("%s: object %s, closed content %s (local %s %v)", p, short(got), short(want), short(local), lerr)
			lost++
		}
		if lerr == nil && local != want {
			t.Errorf("%s: the store lost acknowledged content: %s, want %s", p, short(local), short(want))
		}
		if errors.Is(lerr, os.ErrNotExist) {
			t.Errorf("%s: acknowledged file gone from the mount", p)
		}
	}
	t.Logf("checked %d files: %d lost or different", len(paths), lost)
}
