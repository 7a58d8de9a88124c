package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestModel (invariants 1, 2 and 5 in docs/invariants.md, with renames and
// kills) runs many small random sequences of operations — creates,
// overwrites, appends, truncates, file renames (to a new name, over an
// existing file, write-tmp-then-rename), mkdir, directory renames (to a new
// place, chains, back to the old name, of a parent of a renamed directory,
// between the two associations and in and out of them), unlink, rmdir —
// through one `ferry mount` of the built binary over a real MinIO, with
// `ferry hsm wait` at random points and at the end of each sequence, and the
// daemon killed with SIGKILL at random moments. Each sequence works in
// directories of its own (ma/sN, mb/sN, o/sN), so many run at once, and keeps
// a model of its files; after every `hsm wait` that exits 0 its part of the
// bucket is checked against the model.
//
// Required (a failure otherwise), in both associations:
//   - every live file under its key (the association's prefix is its path,
//     so the key is the path) with exactly its final content (sha256): never
//     missing, never stale;
//   - every live directory has its `dir/` object (the exporter writes one
//     on mkdir and on a rename; docs/architecture.md "Export"), except one
//     whose mkdir was cut by a kill (then no entry may have been journaled
//     for it);
//   - after the last `hsm wait`, the mount shows exactly the model's files
//     and directories with the model's content (nothing lost, nothing
//     resurrected).
//
// Allowed (leftovers, counted and logged, not failures): objects under keys
// that no live file or directory has, as long as the key is a name the
// sequence gave a file (or, for `dir/`, a directory) at some point, and a
// file object's content is content the sequence wrote, or a prefix of it
// (an export may read a file between the writes of one close; unchecked in
// a sequence where a kill cut a write). ma's policy is
// NEW,CHANGED: an unlinked file's object stays (invariant 5). mb's is
// NEW,CHANGED,DELETED, and still a file unlinked below a directory renamed
// before its export ran, or moved out by a directory rename, may leave its
// old object ("a delete is never implied", docs/architecture.md "Export").
// A leftover under a name never used, or holding bytes never written
// (torn: invariant 2), is a failure.
//
// Kills: an operation that fails while the daemon is being killed has an
// unknown outcome. After the restart the sequence looks at the mount and
// takes whichever outcome happened (a rename happened if the old name is
// gone and the new one is there; a mkdir, unlink, rmdir by the name's
// existence); a write cut short is followed by a rewrite of the file with
// new content (an acknowledged close), since its partial content was never
// acknowledged. That is the only tolerance: every operation that returned
// is held to the model. (relistAfterDirRenameFixed below keeps the
// generator away from one known failure on main.)
//
// Size: FERRY_MODEL_SEQS sequences (default 1000, 200 with -short),
// FERRY_MODEL_CONC at once (default 24), FERRY_MODEL_KILLS kills (default
// 5), seeded by FERRY_MODEL_SEED (default: the clock, printed). A failure
// prints the seed, the sequence's number and the operations it ran;
// FERRY_MODEL_SEED=S FERRY_MODEL_ONLY=N FERRY_MODEL_KILLS=0 replays that
// sequence alone (the same operations, as long as no kill cut one).
func TestModel(t *testing.T) {
	cfg := modelConfigFromEnv(t)
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.mount()
	d.associateEvents("/ma", "s3://"+bucket+"/ma/", "NEW,CHANGED")
	d.associateEvents("/mb", "s3://"+bucket+"/mb/", "NEW,CHANGED,DELETED")
	if err := os.Mkdir(filepath.Join(d.mp, "o"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &modelRun{cfg: cfg, mp: d.mp, env: d.env(), s3: srv.Client(t), bucket: bucket}
	r.mg.up = true
	r.mg.ch = make(chan struct{})
	close(r.mg.ch)
	t.Logf("TestModel: FERRY_MODEL_SEED=%d FERRY_MODEL_SEQS=%d FERRY_MODEL_CONC=%d FERRY_MODEL_KILLS=%d (sequences %s); relist guard off (fixed): %v",
		cfg.seed, cfg.seqs, cfg.conc, cfg.kills, cfg.onlyDesc(), cfg.relistFixed)

	start := time.Now()
	idx := make(chan int)
	var wg sync.WaitGroup
	var done atomic.Bool
	for range cfg.conc {
		wg.Go(func() {
			for i := range idx {
				r.runSeq(i)
			}
		})
	}
	go func() {
		for i := range cfg.seqs {
			if cfg.only < 0 || cfg.only == i {
				idx <- i
			}
		}
		close(idx)
		wg.Wait()
		done.Store(true)
	}()
	// The killer: kill -9 at random moments, spread over the expected
	// number of operations, while the sequences' operations, closes,
	// journal appends and exports are in flight.
	krng := rand.New(rand.NewPCG(cfg.seed, 0x6b696c6c))
	expected := int64(cfg.count() * (cfg.minOps + cfg.maxOps) / 2)
	every := max(expected/int64(cfg.kills+1), 1)
	for k := 0; k < cfg.kills && !done.Load(); k++ {
		target := r.ops.Load() + every/2 + krng.Int64N(every)
		testutil.Eventually(t, 10*time.Minute, fmt.Sprintf("kill %d: %d operations done", k, target), func() bool {
			return done.Load() || r.ops.Load() >= target
		})
		if done.Load() {
			break
		}
		r.mg.down()
		d.kill9()
		d.mount()
		r.mg.raise()
		r.kills.Add(1)
	}
	testutil.Eventually(t, 20*time.Minute, "every sequence done", done.Load)

	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("%d sequences in %v: %d operations, %d kills, %d operations cut by a kill, %d checks (hsm wait then the bucket), %d objects checked (%d read, the others by their ETag), %d leftover objects (allowed)",
		cfg.count(), time.Since(start).Round(time.Second), r.ops.Load(), r.kills.Load(), r.cuts.Load(), r.checks.Load(), r.objects.Load(), r.gets.Load(), r.leftovers.Load())
	t.Logf("time summed over the sequences: operations %v, hsm wait %v, bucket checks %v",
		time.Duration(r.opTime.Load()).Round(time.Second), time.Duration(r.waitTime.Load()).Round(time.Second), time.Duration(r.checkTime.Load()).Round(time.Second))
	if len(r.failed) == 0 {
		return
	}
	sort.Slice(r.failed, func(i, j int) bool { return r.failed[i].idx < r.failed[j].idx })
	classes := map[string][]int{}
	for _, f := range r.failed {
		for _, c := range f.classes() {
			classes[c] = append(classes[c], f.idx)
		}
	}
	for i, f := range r.failed {
		if i == 10 {
			t.Errorf("… and %d more failed sequences", len(r.failed)-10)
			break
		}
		t.Errorf("sequence %d failed (replay: FERRY_MODEL_SEED=%d FERRY_MODEL_ONLY=%d FERRY_MODEL_KILLS=0%s):\n%s\noperations:\n  %s",
			f.idx, cfg.seed, f.idx, cfg.unguarded(), f.report(), strings.Join(f.log, "\n  "))
	}
	var cs []string
	for c, idxs := range classes {
		cs = append(cs, fmt.Sprintf("  %-28s %4d sequences, e.g. %v", c, len(idxs), idxs[:min(len(idxs), 8)]))
	}
	sort.Strings(cs)
	t.Errorf("%d of %d sequences failed (FERRY_MODEL_SEED=%d); failure classes:\n%s", len(r.failed), cfg.count(), cfg.seed, strings.Join(cs, "\n"))
}

// A guard for a failure once known on main: while false the generator
// keeps away from what exposed it. It is true since the mount moves a
// renamed directory's listed records with it (importer Renamed, catalog
// MoveListed; TestUnlinkAfterDirRenameStaysDeleted fails without).
//
// Two more guards were here until main's rework of renames (c97d50b,
// e895ebc) fixed what they hid. With a binary of 49f9378 (FERRY_E2E_BIN),
// FERRY_MODEL_SEED=11 fails 5 of 1000 sequences (64, 159, 686, 693, 937;
// 306 too with FERRY_MODEL_UNGUARDED=1) with "missing object" and
// "missing dir object": a directory renamed again, or its parent renamed,
// while the exporter applied its previous rename (TestDirRenameDuringMove,
// the TestCrashKill9 flake), and a directory moved between two
// associations (only its own object was written in the new one).
const (
	// A renamed directory is listed again under its new name at its first
	// lookup or readdir there (listed_dirs is kept by path): objects under
	// the new prefix whose files were deleted locally (a rename back to an
	// old name; a file unlinked through a cached name after its
	// directory's move was exported, policy without DELETED) come back as
	// stubs: "unexpected local entry" (on 49f9378, FERRY_MODEL_SEED=1
	// FERRY_MODEL_SEQS=40 of an earlier generator: sequence 8). While
	// false there are no renames back to an old name, and a renamed
	// directory is walked (listed) through the mount right after its
	// rename, while its new prefix holds nothing yet.
	relistAfterDirRenameFixed = true
)

type modelConfig struct {
	// The guard above, or true with FERRY_MODEL_UNGUARDED=1 (to see the
	// known failure on main without editing this file).
	relistFixed bool

	seqs, conc, kills int
	seed              uint64
	only              int // replay this sequence alone; -1: all
	minOps, maxOps    int
}

func (c modelConfig) count() int {
	if c.only >= 0 {
		return 1
	}
	return c.seqs
}

// unguarded is the environment that replays with the same guards.
func (c modelConfig) unguarded() string {
	if c.relistFixed && !relistAfterDirRenameFixed {
		return " FERRY_MODEL_UNGUARDED=1"
	}
	return ""
}

func (c modelConfig) onlyDesc() string {
	if c.only >= 0 {
		return fmt.Sprintf("only %d", c.only)
	}
	return "all"
}

func modelConfigFromEnv(t *testing.T) modelConfig {
	c := modelConfig{seqs: 1000, conc: 24, kills: 5, only: -1, minOps: 5, maxOps: 25, seed: uint64(time.Now().UnixNano()),
		relistFixed: relistAfterDirRenameFixed || os.Getenv("FERRY_MODEL_UNGUARDED") == "1"}
	if testing.Short() {
		c.seqs, c.kills = 200, 2
	}
	for _, v := range []struct {
		name string
		p    *int
	}{{"FERRY_MODEL_SEQS", &c.seqs}, {"FERRY_MODEL_CONC", &c.conc}, {"FERRY_MODEL_KILLS", &c.kills}, {"FERRY_MODEL_ONLY", &c.only}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || (n < 0 && v.name != "FERRY_MODEL_ONLY") {
				t.Fatalf("%s=%q: want a number", v.name, s)
			}
			*v.p = n
		}
	}
	if s := os.Getenv("FERRY_MODEL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FERRY_MODEL_SEED=%q: want a number", s)
		}
		c.seed = n
	}
	if c.only >= c.seqs {
		c.seqs = c.only + 1
	}
	c.conc = max(c.conc, 1)
	return c
}

// mountGen tells the sequences whether the daemon is up, and in which
// generation: the killer moves to the next one before it kills, so an
// operation that fails while the generation it started in is over was cut
// by a kill.
type mountGen struct {
	mu sync.Mutex
	g  int
	up bool
	ch chan struct{} // closed once the mount of generation g is up
}

func (m *mountGen) down() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.g++
	m.up = false
	m.ch = make(chan struct{})
}

func (m *mountGen) raise() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.up = true
	close(m.ch)
}

func (m *mountGen) gen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.g
}

// waitUp returns the generation once its mount is up.
func (m *mountGen) waitUp() (int, error) {
	for {
		m.mu.Lock()
		g, up, ch := m.g, m.up, m.ch
		m.mu.Unlock()
		if up {
			return g, nil
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Minute):
			return 0, errors.New("the daemon was not mounted again within 5 minutes")
		}
	}
}

// modelRun is what the sequences of one TestModel share.
type modelRun struct {
	cfg    modelConfig
	mp     string
	env    []string
	s3     *s3x.Client
	bucket string
	mg     mountGen

	ops, kills, cuts, checks, objects, leftovers, gets atomic.Int64
	// Where the sequences' time goes (summed over all of them).
	opTime, waitTime, checkTime atomic.Int64

	mu     sync.Mutex
	failed []*seqRun
}

// mnode is a file or directory of a sequence's model.
type mnode struct {
	dir  bool
	data []byte // a file's content as of its last acknowledged change
	// noMarker: a directory whose mkdir was cut by a kill and that was not
	// renamed since: its `dir/` object is not required.
	noMarker bool
	prev     string // a directory's name before its last rename
}

// seqRun is one sequence: its model, its random source and its log.
type seqRun struct {
	r    *modelRun
	idx  int
	rng  *rand.Rand
	name string // sNNNNN: its directory in each root

	nodes   map[string]*mnode // live names, relative to the mount
	everDir map[string]bool   // every name that was a directory
	everF   map[string]bool   // every name that was a file
	sums    map[[32]byte]bool // every content written (acknowledged or not)
	written [][]byte          // the same contents
	byMD5   map[string][]byte // the same by MD5 (hex): single-part ETags
	leftOK  map[string]string // leftover key → ETag found not torn
	anyCut  bool              // a write was cut by a kill
	last    string            // the directory renamed last
	n       int

	log   []string
	fails []modelFailure
}

type modelFailure struct{ class, detail string }

func (s *seqRun) classes() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range s.fails {
		if !seen[f.class] {
			seen[f.class] = true
			out = append(out, f.class)
		}
	}
	return out
}

func (s *seqRun) report() string {
	var b strings.Builder
	for _, f := range s.fails {
		fmt.Fprintf(&b, "  %s: %s\n", f.class, f.detail)
	}
	return strings.TrimRight(b.String(), "\n")
}

func (s *seqRun) fail(class, format string, args ...any) {
	s.fails = append(s.fails, modelFailure{class, fmt.Sprintf(format, args...)})
}

func (s *seqRun) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf(format, args...))
}

// The roots of a sequence: ma and mb are associations (the key of a path
// is the path itself), o is outside every association.
var modelRoots = []string{"ma", "mb", "o"}

func exported(p string) bool { return strings.HasPrefix(p, "ma/") || strings.HasPrefix(p, "mb/") }

func (r *modelRun) runSeq(i int) {
	s := &seqRun{
		r: r, idx: i, name: fmt.Sprintf("s%05d", i),
		rng:   rand.New(rand.NewPCG(r.cfg.seed, uint64(i))),
		nodes: map[string]*mnode{}, everDir: map[string]bool{}, everF: map[string]bool{}, sums: map[[32]byte]bool{},
		byMD5: map[string][]byte{}, leftOK: map[string]string{},
	}
	s.run()
	if len(s.fails) > 0 {
		r.mu.Lock()
		r.failed = append(r.failed, s)
		r.mu.Unlock()
	}
}

func (s *seqRun) abs(p string) string { return filepath.Join(s.r.mp, p) }

func (s *seqRun) run() {
	for _, root := range modelRoots {
		p := root + "/" + s.name
		for s.nodes[p] == nil { // again if a kill cut it before it happened
			s.logf("mkdir %s", p)
			if !s.mkdir(p) {
				return
			}
		}
	}
	nops := s.r.cfg.minOps + s.rng.IntN(s.r.cfg.maxOps-s.r.cfg.minOps+1)
	for range nops {
		if !s.step() {
			return
		}
		s.r.ops.Add(1)
	}
	s.logf("hsm wait (final)")
	if !s.wait() || !s.checkBucket() {
		return
	}
	// The local check reads through the mount: a kill during it makes it
	// start again.
	for {
		g, err := s.r.mg.waitUp()
		if err != nil {
			s.fail("error", "local check: %v", err)
			return
		}
		before := len(s.fails)
		s.checkLocal()
		if s.r.mg.gen() == g {
			return
		}
		s.fails = s.fails[:before]
	}
}

// Operation weights.
var modelOps = []struct {
	name   string
	weight int
}{
	{"create", 18}, {"overwrite", 7}, {"append", 5}, {"truncate", 4},
	{"rename-file", 9}, {"replace", 6}, {"mkdir", 9}, {"rename-dir", 14},
	{"unlink", 5}, {"rmdir", 4}, {"wait", 7}, {"release", 4},
}

// step runs one random operation; false ends the sequence (a failure).
func (s *seqRun) step() bool {
	total := 0
	for _, o := range modelOps {
		total += o.weight
	}
	pick := s.rng.IntN(total)
	op := ""
	for _, o := range modelOps {
		if pick < o.weight {
			op = o.name
			break
		}
		pick -= o.weight
	}
	files, dirs, movable := s.lists()
	switch {
	case len(files) == 0 && (op == "overwrite" || op == "append" || op == "truncate" || op == "rename-file" || op == "replace" || op == "unlink" || op == "release"):
		op = "create"
	case len(movable) == 0 && (op == "rename-dir" || op == "rmdir"):
		op = "mkdir"
	}
	switch op {
	case "create":
		s.n++
		p := s.pick(dirs) + fmt.Sprintf("/f%d", s.n)
		data := s.content()
		s.logf("create %s %s", p, desc(data))
		return s.write(p, data, os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	case "overwrite":
		p := s.pick(files)
		data := s.content()
		s.logf("overwrite %s %s", p, desc(data))
		return s.write(p, data, os.O_TRUNC|os.O_WRONLY)
	case "append":
		p := s.pick(files)
		more := s.content()
		data := append(append([]byte{}, s.nodes[p].data...), more...)
		s.logf("append %s +%d B → %s", p, len(more), desc(data))
		return s.write(p, more, os.O_APPEND|os.O_WRONLY, data)
	case "truncate":
		p := s.pick(files)
		old := s.nodes[p].data
		size := s.rng.IntN(len(old) + 4096)
		data := make([]byte, size)
		copy(data, old)
		s.logf("truncate %s %d → %s", p, size, desc(data))
		return s.truncate(p, data)
	case "rename-file":
		from := s.pick(files)
		to := ""
		if s.rng.IntN(3) == 0 && len(files) > 1 {
			for to == "" || to == from {
				to = s.pick(files)
			}
		} else {
			s.n++
			to = s.pickNear(dirs, from) + fmt.Sprintf("/f%d", s.n)
		}
		s.logf("rename %s %s", from, to)
		return s.rename(from, to)
	case "replace":
		p := s.pick(files)
		s.n++
		tmp := fmt.Sprintf("%s.tmp%d", p, s.n)
		data := s.content()
		s.logf("replace %s: write %s %s, rename it over", p, tmp, desc(data))
		if !s.write(tmp, data, os.O_CREATE|os.O_EXCL|os.O_WRONLY) {
			return false
		}
		if s.nodes[tmp] == nil {
			return true // the write was cut by a kill and its file removed
		}
		return s.rename(tmp, p)
	case "mkdir":
		s.n++
		p := s.pick(dirs) + fmt.Sprintf("/d%d", s.n)
		s.logf("mkdir %s", p)
		return s.mkdir(p)
	case "rename-dir":
		from, to := s.dirRename(dirs, movable)
		return s.rename(from, to) && s.afterDirRename(to)
	case "unlink":
		p := s.pick(files)
		s.logf("unlink %s", p)
		return s.remove(p)
	case "rmdir":
		// An empty directory, or a whole tree (rm -r: files, then
		// directories deepest first).
		p := s.pick(movable)
		var below []string
		for q := range s.nodes {
			if strings.HasPrefix(q, p+"/") {
				below = append(below, q)
			}
		}
		sort.Slice(below, func(i, j int) bool { return below[i] > below[j] })
		s.logf("rm -r %s (%d entries below)", p, len(below))
		for _, q := range append(below, p) {
			// A remove cut by a kill may not have happened: then it is
			// done again, as a user would run rm -r again.
			for s.nodes[q] != nil {
				if !s.remove(q) {
					return false
				}
			}
		}
		return true
	case "wait":
		s.logf("hsm wait")
		return s.wait() && s.checkBucket()
	case "release":
		// The file's data leaves the store (only its object has it) if
		// it is exported and clean; otherwise hsm release refuses, which
		// changes nothing. Either way its content must not change: later
		// reads, renames and moves work from the object.
		p := s.pick(files)
		_, err := s.r.mg.waitUp()
		if err != nil {
			s.fail("error", "release: %v", err)
			return false
		}
		code, _ := s.r.ferry("hsm", "release", s.abs(p))
		s.logf("release %s (exit %d)", p, code)
		return true
	}
	panic(op)
}

// dirRename picks a directory rename: a chain (the directory renamed last,
// again), back to its old name, a rename of its parent, or any directory
// to a new place (another root a quarter of the time).
func (s *seqRun) dirRename(dirs, movable []string) (from, to string) {
	last := s.nodes[s.last]
	switch k := s.rng.IntN(10); {
	case k < 2 && s.r.cfg.relistFixed && last != nil && last.prev != "" && s.nodes[last.prev] == nil &&
		s.nodes[path.Dir(last.prev)] != nil && !below(last.prev, s.last):
		from, to = s.last, last.prev
		s.logf("rename-dir %s %s (back to its old name)", from, to)
		return
	case k < 4 && last != nil && s.movable(path.Dir(s.last)):
		from = path.Dir(s.last)
		s.n++
		to = fmt.Sprintf("%s/d%d", path.Dir(from), s.n)
		s.logf("rename-dir %s %s (the parent of %s)", from, to, s.last)
		return
	case k < 6 && last != nil:
		from = s.last
		s.n++
		to = fmt.Sprintf("%s/d%d", path.Dir(from), s.n)
		s.logf("rename-dir %s %s (chain)", from, to)
		return
	}
	from = s.pick(movable)
	var targets []string
	for _, d := range dirs {
		if d != from && !below(d, from) {
			targets = append(targets, d)
		}
	}
	s.n++
	to = s.pickNear(targets, from) + fmt.Sprintf("/d%d", s.n)
	s.logf("rename-dir %s %s", from, to)
	return
}

// afterDirRename walks directory to through the mount right after its
// rename while relistAfterDirRenameFixed is false (see there).
func (s *seqRun) afterDirRename(to string) bool {
	if s.nodes[to] == nil || s.r.cfg.relistFixed {
		return true
	}
	s.logf("list %s and below (guard)", to)
	return s.settle(func() error {
		return filepath.WalkDir(s.abs(to), func(_ string, _ fs.DirEntry, err error) error { return err })
	})
}

// below reports whether p is below directory d.
func below(p, d string) bool { return strings.HasPrefix(p, d+"/") }

func (s *seqRun) movable(p string) bool {
	n := s.nodes[p]
	return n != nil && n.dir && strings.Count(p, "/") > 1
}

// lists returns the sequence's live files, directories (roots included)
// and the directories that may be renamed or removed (not the roots), each
// sorted so that a seed replays the same choices.
func (s *seqRun) lists() (files, dirs, movable []string) {
	for p, n := range s.nodes {
		switch {
		case !n.dir:
			files = append(files, p)
		case s.movable(p):
			movable = append(movable, p)
			dirs = append(dirs, p)
		default:
			dirs = append(dirs, p)
		}
	}
	sort.Strings(files)
	sort.Strings(dirs)
	sort.Strings(movable)
	return
}

func (s *seqRun) pick(l []string) string { return l[s.rng.IntN(len(l))] }

// pickNear picks a directory in the root of p three times in four,
// anywhere (another association, or outside every one) otherwise.
func (s *seqRun) pickNear(dirs []string, p string) string {
	if s.rng.IntN(4) == 0 {
		return s.pick(dirs)
	}
	root := p[:strings.Index(p, "/")]
	var near []string
	for _, d := range dirs {
		if strings.HasPrefix(d, root+"/") {
			near = append(near, d)
		}
	}
	if len(near) == 0 {
		return s.pick(dirs)
	}
	return s.pick(near)
}

// content returns new random content: mostly small, sometimes up to 1 MiB.
func (s *seqRun) content() []byte {
	var n int
	switch k := s.rng.IntN(20); {
	case k < 12:
		n = s.rng.IntN(2048)
	case k < 19:
		n = 2048 + s.rng.IntN(62<<10)
	default:
		n = 64<<10 + s.rng.IntN(960<<10)
	}
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := s.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	s.wrote(b)
	return b
}

func (s *seqRun) wrote(b []byte) {
	if sum := sha256.Sum256(b); !s.sums[sum] {
		s.sums[sum] = true
		s.written = append(s.written, b)
		m := md5.Sum(b)
		s.byMD5[hex.EncodeToString(m[:])] = b
	}
}

// torn reports whether b is no content the sequence's files ever had:
// neither what it wrote nor a moment of a write in progress (a prefix: an
// export may read a file between the writes of one close, and invariant 2
// allows an object to be the file's content at any one moment; the close's
// entry exports the final content, unless the name is gone by then).
func (s *seqRun) torn(b []byte) bool {
	for _, w := range s.written {
		if bytes.HasPrefix(w, b) {
			return false
		}
	}
	return true
}

func desc(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("(%d B %x)", len(b), sum[:4])
}

// act runs one operation through the mount. cut: it failed because the
// daemon was killed under it (the mount is up again when act returns);
// err: it failed otherwise.
func (s *seqRun) act(op func() error) (cut bool, err error) {
	g, err := s.r.mg.waitUp()
	if err != nil {
		return false, err
	}
	defer s.r.timed(&s.r.opTime)()
	if err := op(); err != nil {
		if s.r.mg.gen() != g {
			s.r.cuts.Add(1)
			_, werr := s.r.mg.waitUp()
			return true, werr
		}
		return false, err
	}
	return false, nil
}

// settle runs an observation (and repair) after a cut operation until it
// ran without a kill cutting it in turn.
func (s *seqRun) settle(f func() error) bool {
	for {
		g, err := s.r.mg.waitUp()
		if err == nil {
			if err = f(); err == nil {
				return true
			}
			if s.r.mg.gen() != g {
				continue
			}
		}
		s.fail("error", "after a kill: %v", err)
		return false
	}
}

func writeAll(p string, flags int, data []byte) error {
	f, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += 128 << 10 {
		if _, err := f.Write(data[off:min(off+128<<10, len(data))]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// exists reports whether p exists (lstat), an error other than ENOENT
// otherwise.
func exists(p string) (bool, error) {
	_, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// write writes data to p with flags and closes it; final, when given, is
// the file's content afterwards (an append).
func (s *seqRun) write(p string, data []byte, flags int, final ...[]byte) bool {
	cut, err := s.act(func() error { return writeAll(s.abs(p), flags, data) })
	if err != nil {
		s.fail("error", "%s: %v", p, err)
		return false
	}
	if !cut {
		if final != nil {
			data = final[0]
		}
		s.setFile(p, data)
		return true
	}
	return s.rewriteCut(p)
}

func (s *seqRun) truncate(p string, data []byte) bool {
	cut, err := s.act(func() error { return os.Truncate(s.abs(p), int64(len(data))) })
	if err != nil {
		s.fail("error", "truncate %s: %v", p, err)
		return false
	}
	if !cut {
		s.setFile(p, data)
		return true
	}
	return s.rewriteCut(p)
}

// rewriteCut settles a write or truncate of p cut by a kill: its outcome
// is unknown and was never acknowledged, so if p exists it is written
// again with new content (acknowledged by its close), and a .tmp file is
// removed instead; if it does not exist (a create that did not happen), it
// is not in the model.
func (s *seqRun) rewriteCut(p string) bool {
	s.anyCut = true
	s.everF[p] = true
	tmp := strings.Contains(path.Base(p), ".tmp")
	return s.settle(func() error {
		ok, err := exists(s.abs(p))
		if err != nil {
			return err
		}
		switch {
		case !ok:
			if s.nodes[p] != nil {
				return fmt.Errorf("%s: an existing file is gone after a write cut by a kill", p)
			}
			s.logf("  cut by a kill: %s not created", p)
		case tmp:
			if err := os.Remove(s.abs(p)); err != nil {
				return err
			}
			delete(s.nodes, p)
			s.logf("  cut by a kill: %s removed", p)
		default:
			data := s.content()
			if err := writeAll(s.abs(p), os.O_TRUNC|os.O_WRONLY, data); err != nil {
				return err
			}
			s.setFile(p, data)
			s.logf("  cut by a kill: %s rewritten %s", p, desc(data))
		}
		return nil
	})
}

func (s *seqRun) setFile(p string, data []byte) {
	s.nodes[p] = &mnode{data: data}
	s.everF[p] = true
	s.wrote(data)
}

func (s *seqRun) mkdir(p string) bool {
	cut, err := s.act(func() error { return os.Mkdir(s.abs(p), 0o755) })
	if err != nil {
		s.fail("error", "mkdir %s: %v", p, err)
		return false
	}
	s.everDir[p] = true
	if !cut {
		s.nodes[p] = &mnode{dir: true}
		return true
	}
	return s.settle(func() error {
		ok, err := exists(s.abs(p))
		if ok {
			s.nodes[p] = &mnode{dir: true, noMarker: true}
		}
		s.logf("  cut by a kill: made %v", ok)
		return err
	})
}

func (s *seqRun) remove(p string) bool {
	cut, err := s.act(func() error { return os.Remove(s.abs(p)) })
	if err != nil {
		s.fail("error", "remove %s: %v", p, err)
		return false
	}
	if !cut {
		delete(s.nodes, p)
		return true
	}
	return s.settle(func() error {
		ok, err := exists(s.abs(p))
		if err == nil && !ok {
			delete(s.nodes, p)
		}
		s.logf("  cut by a kill: removed %v", !ok)
		return err
	})
}

func (s *seqRun) rename(from, to string) bool {
	cut, err := s.act(func() error { return os.Rename(s.abs(from), s.abs(to)) })
	if err != nil {
		s.fail("error", "rename %s %s: %v", from, to, err)
		return false
	}
	if !cut {
		s.moveModel(from, to)
		return true
	}
	return s.settle(func() error {
		okF, err := exists(s.abs(from))
		if err != nil {
			return err
		}
		okT, err := exists(s.abs(to))
		if err != nil {
			return err
		}
		if !okF && !okT {
			return fmt.Errorf("rename %s %s cut by a kill: both names are gone", from, to)
		}
		happened := !okF
		s.logf("  cut by a kill: happened %v", happened)
		if happened {
			s.moveModel(from, to)
		}
		return nil
	})
}

// moveModel applies a rename to the model.
func (s *seqRun) moveModel(from, to string) {
	n := s.nodes[from]
	delete(s.nodes, from)
	s.nodes[to] = n
	if !n.dir {
		s.everF[to] = true
		return
	}
	s.everDir[to] = true
	n.prev, n.noMarker = from, false
	s.last = to
	var moved []string
	for p := range s.nodes {
		if below(p, from) {
			moved = append(moved, p)
		}
	}
	for _, p := range moved {
		q := to + p[len(from):]
		c := s.nodes[p]
		delete(s.nodes, p)
		s.nodes[q] = c
		if c.dir {
			s.everDir[q] = true
			if c.prev != "" {
				c.prev = "" // its old name is below from: not a rename back
			}
		} else {
			s.everF[q] = true
		}
	}
}

// timed adds the time until the returned function runs to *d.
func (r *modelRun) timed(d *atomic.Int64) func() {
	t0 := time.Now()
	return func() { d.Add(int64(time.Since(t0))) }
}

// ferry runs the built binary (not through d.run: this runs outside the
// test's goroutine).
func (r *modelRun) ferry(args ...string) (int, string) {
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = r.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, out.String()
}

// wait runs `ferry hsm wait` on the sequence's directories in both
// associations, again after a kill, until it exits 0.
func (s *seqRun) wait() bool {
	defer s.r.timed(&s.r.waitTime)()
	for {
		g, err := s.r.mg.waitUp()
		if err != nil {
			s.fail("error", "hsm wait: %v", err)
			return false
		}
		code, out := s.r.ferry("hsm", "wait", "--timeout", "180s", s.abs("ma/"+s.name), s.abs("mb/"+s.name))
		if code == 0 {
			return true
		}
		if s.r.mg.gen() == g {
			s.fail("hsm wait", "exit %d without a kill: %s", code, strings.TrimSpace(out))
			return false
		}
	}
}

// listed is an object of the sequence's part of the bucket.
type listed struct {
	size int64
	etag string // without quotes
}

// sumOf returns the sha256 of the object at key: from its ETag when that
// is the MD5 of content the sequence wrote (a single-part upload or a copy
// of one), else by reading it (a GET). ok false: it is gone.
func (s *seqRun) sumOf(key string, o listed) ([32]byte, bool) {
	if c, ok := s.byMD5[o.etag]; ok && int64(len(c)) == o.size {
		return sha256.Sum256(c), true
	}
	s.r.gets.Add(1)
	return s.get(key)
}

// checkBucket compares the sequence's part of the bucket with the model
// (see TestModel for what is required and what is allowed); false ends the
// sequence.
func (s *seqRun) checkBucket() bool {
	defer s.r.timed(&s.r.checkTime)()
	s.r.checks.Add(1)
	ctx := context.Background()
	objs := map[string]listed{}
	for _, root := range []string{"ma", "mb"} {
		err := s.r.s3.List(ctx, s.r.bucket, s3x.ListOptions{Prefix: root + "/" + s.name + "/"}, func(o s3x.Object) error {
			objs[o.Key] = listed{size: o.Size, etag: strings.Trim(o.ETag, `"`)}
			return nil
		})
		if err != nil {
			s.fail("error", "list %s: %v", root, err)
			return false
		}
	}
	content := map[[32]byte]string{}
	var live []string
	for p, n := range s.nodes {
		if exported(p) {
			live = append(live, p)
			if !n.dir {
				content[sha256.Sum256(n.data)] = p
			}
		}
	}
	sort.Strings(live)
	before := len(s.fails)
	for _, p := range live {
		n := s.nodes[p]
		if n.dir {
			if _, ok := objs[p+"/"]; !ok && !n.noMarker {
				s.fail("missing dir object", "%s/: the directory exists, its object does not", p)
			}
			delete(objs, p+"/")
			continue
		}
		want := sha256.Sum256(n.data)
		if _, ok := objs[p]; !ok {
			s.fail("missing object", "%s: the file %s exists, its object does not%s; %s; %s", p, desc(n.data), s.whereIs(want, objs), s.hsmState(p), s.later(p, want))
			continue
		}
		o := objs[p]
		delete(objs, p)
		got, ok := s.sumOf(p, o)
		s.r.objects.Add(1)
		switch {
		case !ok:
			s.fail("missing object", "%s: listed but gone", p)
		case got != want:
			what := "stale object"
			if !s.sums[got] {
				what = "foreign object" // content this sequence never wrote
			}
			s.fail(what, "%s: object %x, the file has %s%s", p, got[:4], desc(n.data), nameOf(content, got))
		}
	}
	// What is left are leftovers: allowed under names the sequence used,
	// with content it wrote.
	var keys []string
	for k := range objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.r.leftovers.Add(1)
		if p, ok := strings.CutSuffix(k, "/"); ok {
			if !s.everDir[p] {
				s.fail("misplaced object", "%s: a directory object under a name that never was a directory", k)
			}
			continue
		}
		if !s.everF[k] {
			got, _ := s.sumOf(k, objs[k])
			s.fail("misplaced object", "%s: an object under a name that never was a file (%x%s)", k, got[:4], nameOf(content, got))
			continue
		}
		if s.anyCut || s.leftOK[k] == objs[k].etag {
			continue
		}
		if c, ok := s.byMD5[objs[k].etag]; ok && int64(len(c)) == objs[k].size {
			s.leftOK[k] = objs[k].etag
			continue
		}
		s.r.gets.Add(1)
		if b, ok := s.body(k); ok && s.torn(b) {
			s.fail("torn object", "%s: a leftover with content never written %s", k, desc(b))
		} else {
			s.leftOK[k] = objs[k].etag
		}
	}
	return len(s.fails) == before
}

// whereIs says where content sum is in the bucket, if anywhere.
func (s *seqRun) whereIs(sum [32]byte, objs map[string]listed) string {
	var ks []string
	for k := range objs {
		if !strings.HasSuffix(k, "/") {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	for _, k := range ks {
		if got, ok := s.sumOf(k, objs[k]); ok && got == sum {
			return "; that content is under " + k
		}
	}
	return ""
}

// later says whether the object of p appears with content sum within 20
// s after a check found it missing (still a failure: hsm wait returned
// before it was there), for failure reports.
func (s *seqRun) later(p string, sum [32]byte) string {
	t0 := time.Now()
	for time.Since(t0) < 20*time.Second {
		if got, ok := s.get(p); ok {
			return fmt.Sprintf("the object appeared %v after the check (same content: %v)", time.Since(t0).Round(time.Millisecond), got == sum)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "the object did not appear within 20 s"
}

// hsmState is `ferry hsm state` of p, for failure reports: whether the
// daemon thinks the file is exported.
func (s *seqRun) hsmState(p string) string {
	_, out := s.r.ferry("hsm", "state", s.abs(p))
	return "hsm state: " + strings.TrimSpace(strings.ReplaceAll(out, s.r.mp+"/", ""))
}

func nameOf(content map[[32]byte]string, sum [32]byte) string {
	if p, ok := content[sum]; ok {
		return "; that is the content of " + p
	}
	return ""
}

func (s *seqRun) get(key string) ([32]byte, bool) {
	b, ok := s.body(key)
	return sha256.Sum256(b), ok
}

func (s *seqRun) body(key string) ([]byte, bool) {
	out, err := s.r.s3.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.r.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, false
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return b, err == nil
}

// checkLocal compares what the mount shows under the sequence's
// directories with the model.
func (s *seqRun) checkLocal() {
	seen := map[string]bool{}
	for _, root := range modelRoots {
		top := root + "/" + s.name
		err := filepath.WalkDir(s.abs(top), func(full string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(s.r.mp, full)
			seen[rel] = true
			n := s.nodes[rel]
			switch {
			case n == nil:
				s.fail("unexpected local entry", "%s: in the mount, not in the model", rel)
			case n.dir != de.IsDir():
				s.fail("local type", "%s: directory %v in the mount, %v in the model", rel, de.IsDir(), n.dir)
			case !n.dir:
				b, err := os.ReadFile(full)
				if err != nil {
					return err
				}
				if !bytes.Equal(b, n.data) {
					s.fail("local content", "%s: %s in the mount, the model has %s", rel, desc(b), desc(n.data))
				}
			}
			return nil
		})
		if err != nil {
			s.fail("error", "walk %s: %v", top, err)
		}
	}
	var missing []string
	for p := range s.nodes {
		if !seen[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		s.fail("missing local entry", "%s: in the model, not in the mount", p)
	}
}
