// Command latency measures auto-import's event-to-visible latency from
// outside a ferry mount: it changes objects in the bucket at a steady rate
// (new objects in listed directories, overwrites of files already read,
// deletes) and, for each change, polls the path through the mount until
// the change shows. It is the load generator and probe of
// bench/import/run.sh.
//
//	go run ./bench/import/latency -endpoint http://127.0.0.1:9000 -bucket b \
//	    -prefix in/ -dir /mnt/data -rate 100 -duration 60s \
//	    [-metrics http://127.0.0.1:9100/metrics] [-raw changes.tsv]
//
// -setup puts the seed (-dirs directories of -per objects each below
// -prefix), lists each directory through the mount and reads every file
// that an overwrite will change, so those files are local ("already read");
// the run then needs the seed in place. Without -setup the seed must be
// there already.
//
// Change k is sent at start + k/rate (open loop, -workers at a time): 40 %
// new objects (dir/nK: a name never used), 30 % overwrites of read files
// (to a new size), 30 % deletes of seed files never read, in a fixed
// rotation. Latency = the first poll that saw the change − the return of
// the PUT or DELETE. A poll is an lstat of the path (no open: an open file
// defers its change): new — the file exists with its size; overwrite —
// the new size; delete — ENOENT. Each pending change is polled by one of
// -pollers goroutines in turn, at most every -poll and, once older, every
// twentieth of its age (so a backlog does not turn the probe into a load
// on the daemon): the error is under max(-poll, 5 %) plus one round of
// lstats. A change not seen
// after -giveup is counted lost; the report also counts those seen after
// 10 s. At the end the content of every new and overwritten file is read
// once and compared.
//
// With -metrics, the daemon's ferry_import_lag_seconds histogram (event
// time → applied) is scraped before and after; its quantiles are the upper
// bound of the bucket holding them (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10 … s).
//
// Output: one tab-separated line (header with -header) on stdout. Keys and
// credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

type opts struct {
	endpoint, bucket, prefix, dir, metrics, raw, label string
	rate                                               float64
	duration, giveup, poll                             time.Duration
	dirs, per, workers, pollers                        int
	setup, header                                      bool
}

func main() {
	var o opts
	flag.StringVar(&o.endpoint, "endpoint", "", "S3 endpoint URL (required)")
	flag.StringVar(&o.bucket, "bucket", "", "bucket of the association (required)")
	flag.StringVar(&o.prefix, "prefix", "", "key prefix the association maps to -dir, ending in / (required)")
	flag.StringVar(&o.dir, "dir", "", "the association's directory in the mount (required)")
	flag.StringVar(&o.metrics, "metrics", "", "the daemon's Prometheus URL (http://127.0.0.1:PORT/metrics); empty: no daemon view")
	flag.StringVar(&o.raw, "raw", "", "write every change's kind, path, return time and latency (TSV) to this file")
	flag.StringVar(&o.label, "label", "", "first column of the output line")
	flag.Float64Var(&o.rate, "rate", 100, "changes per second")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long changes are sent")
	flag.DurationVar(&o.giveup, "giveup", 30*time.Second, "a change not seen after this long is lost")
	flag.DurationVar(&o.poll, "poll", 10*time.Millisecond, "shortest period between two polls of a path")
	flag.IntVar(&o.dirs, "dirs", 4, "seed directories (d0 …)")
	flag.IntVar(&o.per, "per", 1000, "seed objects per directory; a run needs per×dirs ≥ 0.6 × rate × duration")
	flag.IntVar(&o.workers, "workers", 16, "PUTs and DELETEs in flight at most")
	flag.IntVar(&o.pollers, "pollers", 4, "goroutines polling the pending changes")
	flag.BoolVar(&o.setup, "setup", false, "put the seed, list its directories through the mount and read the files to overwrite, then exit")
	flag.BoolVar(&o.header, "header", false, "print the header line of the output first")
	flag.Parse()
	if o.endpoint == "" || o.bucket == "" || o.dir == "" || !strings.HasSuffix(o.prefix, "/") {
		fmt.Fprintln(os.Stderr, "latency: give -endpoint, -bucket, -dir and -prefix (ending in /)")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

// kind of change.
type kind uint8

const (
	kNew kind = iota
	kOver
	kDel
)

func (k kind) String() string { return [...]string{"new", "overwrite", "delete"}[k] }

// change is one change and what was seen of it.
type change struct {
	kind kind
	rel  string // below -dir and -prefix
	body []byte // nil for a delete
	sent time.Time
	done time.Time // the PUT or DELETE returned
	seen time.Time // zero: not seen
	next time.Time // the next poll is due
	err  error
}

// The seed: object i of directory d is d<d>/s<i>, 100 bytes. The first
// half of each directory is overwritten (read at setup), the second half
// deleted (never read).
func seedRel(d, i int) string { return fmt.Sprintf("d%d/s%05d", d, i) }

func seedBody() []byte { return bytes.Repeat([]byte{'s'}, 100) }

func run(o opts) error {
	ctx := context.Background()
	c, err := s3x.New(ctx, s3x.Config{EndpointURL: o.endpoint, MaxConns: o.workers})
	if err != nil {
		return err
	}
	if o.setup {
		return setup(ctx, c, o)
	}
	plan, err := makePlan(o)
	if err != nil {
		return err
	}
	var before histogram
	if o.metrics != "" {
		if before, err = scrape(o.metrics); err != nil {
			return err
		}
	}
	load0 := loadavg()
	watch := newWatcher(o)
	send(ctx, c, o, plan, watch)
	watch.wait()
	var after histogram
	if o.metrics != "" {
		if after, err = scrape(o.metrics); err != nil {
			return err
		}
	}
	bad := verify(o, plan)
	return report(o, watch, plan, after.minus(before), bad, load0)
}

// makePlan lays out rate × duration changes in the fixed rotation of
// 4 new, 3 overwrites, 3 deletes, spread over the directories.
func makePlan(o opts) ([]*change, error) {
	n := int(o.rate * o.duration.Seconds())
	half := o.per / 2
	if need := (n*3 + 9) / 10; need > half*o.dirs {
		return nil, fmt.Errorf("%d changes need %d files to overwrite and as many to delete; the seed has %d of each (-dirs %d × -per %d / 2): give a larger -per",
			n, need, half*o.dirs, o.dirs, o.per)
	}
	rot := [10]kind{kNew, kOver, kDel, kNew, kOver, kDel, kNew, kOver, kDel, kNew}
	var nNew, nOver, nDel int
	plan := make([]*change, n)
	stamp := time.Now().Format("150405")
	for k := range n {
		ch := &change{kind: rot[k%10]}
		switch ch.kind {
		case kNew:
			ch.rel = fmt.Sprintf("d%d/n%s-%06d", nNew%o.dirs, stamp, nNew)
			ch.body = bytes.Repeat([]byte{'n'}, 50+nNew%200)
			nNew++
		case kOver:
			ch.rel = seedRel(nOver%o.dirs, nOver/o.dirs)
			ch.body = bytes.Repeat([]byte{'o'}, 300+nOver%200)
			nOver++
		case kDel:
			ch.rel = seedRel(nDel%o.dirs, half+nDel/o.dirs)
			nDel++
		}
		plan[k] = ch
	}
	return plan, nil
}

// setup puts the seed, lists each directory through the mount and reads
// the first half of each (the files overwrites will change).
func setup(ctx context.Context, c *s3x.Client, o opts) error {
	sem := make(chan struct{}, o.workers)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for d := range o.dirs {
		for i := range o.per {
			rel := seedRel(d, i)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := put(ctx, c, o, rel, seedBody()); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}()
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	for d := range o.dirs {
		ents, err := os.ReadDir(filepath.Join(o.dir, fmt.Sprintf("d%d", d)))
		if err != nil {
			return err
		}
		if len(ents) < o.per {
			return fmt.Errorf("%s/d%d lists %d entries, want ≥ %d", o.dir, d, len(ents), o.per)
		}
		for i := range o.per / 2 {
			b, err := os.ReadFile(filepath.Join(o.dir, seedRel(d, i)))
			if err != nil {
				return err
			}
			if len(b) != 100 {
				return fmt.Errorf("%s: %d bytes, want 100", seedRel(d, i), len(b))
			}
		}
	}
	return nil
}

func put(ctx context.Context, c *s3x.Client, o opts, rel string, body []byte) error {
	_, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(o.bucket),
		Key: aws.String(o.prefix + rel), Body: bytes.NewReader(body)})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s%s: %w", o.bucket, o.prefix, rel, err)
	}
	return nil
}

// send makes the changes at their times, -workers at a time, and hands
// each to the watcher when its request returns.
func send(ctx context.Context, c *s3x.Client, o opts, plan []*change, w *watcher) {
	sem := make(chan struct{}, o.workers)
	var wg sync.WaitGroup
	start := time.Now()
	for k, ch := range plan {
		if d := time.Until(start.Add(time.Duration(float64(k) / o.rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ch.sent = time.Now()
			if ch.kind == kDel {
				_, ch.err = c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.prefix + ch.rel)})
			} else {
				ch.err = put(ctx, c, o, ch.rel, ch.body)
			}
			ch.done = time.Now()
			if ch.err == nil {
				w.add(ch)
			}
		}()
	}
	wg.Wait()
	w.closeAdds()
}

// watcher polls the pending changes through the mount.
type watcher struct {
	o      opts
	shards []*shard
	mu     sync.Mutex
	next   int
	closed chan struct{}
	wg     sync.WaitGroup
}

type shard struct {
	mu      sync.Mutex
	pending []*change
	rounds  int
	roundNS int64 // sum of round times
	maxNS   int64
}

func newWatcher(o opts) *watcher {
	w := &watcher{o: o, closed: make(chan struct{})}
	for range o.pollers {
		s := &shard{}
		w.shards = append(w.shards, s)
		w.wg.Add(1)
		go w.poll(s)
	}
	return w
}

func (w *watcher) add(ch *change) {
	w.mu.Lock()
	s := w.shards[w.next%len(w.shards)]
	w.next++
	w.mu.Unlock()
	s.mu.Lock()
	s.pending = append(s.pending, ch)
	s.mu.Unlock()
}

func (w *watcher) closeAdds() { close(w.closed) }

// wait returns once every change was seen or given up.
func (w *watcher) wait() { w.wg.Wait() }

// poll checks shard s's pending changes, a round at most every -poll,
// until no more come and none is pending.
func (w *watcher) poll(s *shard) {
	defer w.wg.Done()
	for {
		t0 := time.Now()
		s.mu.Lock()
		batch := slices.Clone(s.pending)
		s.mu.Unlock()
		var gone []*change
		for _, ch := range batch {
			now := time.Now()
			if now.Before(ch.next) {
				continue
			}
			// Polled again after a twentieth of its age, at least -poll
			// later: the error stays under 5 % plus one round, and a
			// backlog does not turn the probe into a load on the daemon.
			ch.next = now.Add(max(w.o.poll, now.Sub(ch.done)/20))
			if visible(w.o, ch) {
				ch.seen = time.Now()
				gone = append(gone, ch)
			} else if now.Sub(ch.done) > w.o.giveup {
				gone = append(gone, ch)
			}
		}
		rt := time.Since(t0)
		s.mu.Lock()
		s.pending = slices.DeleteFunc(s.pending, func(c *change) bool { return slices.Contains(gone, c) })
		left := len(s.pending)
		if len(batch) > 0 {
			s.rounds++
			s.roundNS += int64(rt)
			s.maxNS = max(s.maxNS, int64(rt))
		}
		s.mu.Unlock()
		if left == 0 {
			select {
			case <-w.closed:
				s.mu.Lock()
				left = len(s.pending)
				s.mu.Unlock()
				if left == 0 {
					return
				}
			default:
			}
		}
		if d := w.o.poll - time.Since(t0); d > 0 {
			time.Sleep(d)
		}
	}
}

// visible tells whether ch shows through the mount, by lstat alone.
func visible(o opts, ch *change) bool {
	var st syscall.Stat_t
	err := syscall.Lstat(filepath.Join(o.dir, ch.rel), &st)
	if ch.kind == kDel {
		return errors.Is(err, syscall.ENOENT)
	}
	return err == nil && st.Size == int64(len(ch.body))
}

// verify reads every new and overwritten file that was seen and counts
// those whose content is not the body put.
func verify(o opts, plan []*change) int {
	bad := 0
	for _, ch := range plan {
		if ch.kind == kDel || ch.seen.IsZero() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(o.dir, ch.rel))
		if err != nil || !bytes.Equal(b, ch.body) {
			if bad < 5 {
				fmt.Fprintf(os.Stderr, "latency: %s %s: read %d bytes (%v), want %d bytes of %q\n", ch.kind, ch.rel, len(b), err, len(ch.body), ch.body[0])
			}
			bad++
		}
	}
	return bad
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

var header = []string{"label", "changes", "sent_per_s", "send_errors", "seen", "p50_s", "p90_s", "p99_s", "max_s",
	"over_10s", "lost", "content_bad", "new_p50", "new_p99", "over_p50", "over_p99", "del_p50", "del_p99",
	"poll_round_mean_ms", "poll_round_max_ms", "daemon_lag_n", "daemon_lag_p50_le", "daemon_lag_p90_le", "daemon_lag_p99_le",
	"daemon_lag_mean_s", "load_before", "load_after"}

func report(o opts, w *watcher, plan []*change, h histogram, bad int, load0 string) error {
	var all []float64
	by := map[kind][]float64{}
	sendErr, lost, over10 := 0, 0, 0
	var first, last time.Time
	for _, ch := range plan {
		if first.IsZero() || ch.sent.Before(first) {
			first = ch.sent
		}
		if ch.sent.After(last) {
			last = ch.sent
		}
		switch {
		case ch.err != nil:
			sendErr++
			if sendErr <= 3 {
				fmt.Fprintln(os.Stderr, "latency:", ch.err)
			}
		case ch.seen.IsZero():
			lost++
		default:
			l := ch.seen.Sub(ch.done).Seconds()
			all = append(all, l)
			by[ch.kind] = append(by[ch.kind], l)
			if l > 10 {
				over10++
			}
		}
	}
	slices.Sort(all)
	for _, xs := range by {
		slices.Sort(xs)
	}
	var rounds int
	var roundNS, maxNS int64
	for _, s := range w.shards {
		rounds += s.rounds
		roundNS += s.roundNS
		maxNS = max(maxNS, s.maxNS)
	}
	mean := math.NaN()
	if rounds > 0 {
		mean = float64(roundNS) / float64(rounds) / 1e6
	}
	rate := float64(len(plan)) / math.Max(last.Sub(first).Seconds(), 1e-9)
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	row := []string{o.label, strconv.Itoa(len(plan)), strconv.FormatFloat(rate, 'f', 1, 64), strconv.Itoa(sendErr), strconv.Itoa(len(all)),
		f(quantile(all, .5)), f(quantile(all, .9)), f(quantile(all, .99)), f(quantile(all, 1)),
		strconv.Itoa(over10), strconv.Itoa(lost), strconv.Itoa(bad),
		f(quantile(by[kNew], .5)), f(quantile(by[kNew], .99)), f(quantile(by[kOver], .5)), f(quantile(by[kOver], .99)),
		f(quantile(by[kDel], .5)), f(quantile(by[kDel], .99)),
		strconv.FormatFloat(mean, 'f', 1, 64), strconv.FormatFloat(float64(maxNS)/1e6, 'f', 1, 64),
		strconv.FormatFloat(h.count, 'f', 0, 64), h.quantile(.5), h.quantile(.9), h.quantile(.99), f(h.mean()),
		load0, loadavg()}
	if o.header {
		fmt.Println(strings.Join(header, "\t"))
	}
	fmt.Println(strings.Join(row, "\t"))
	if o.raw != "" {
		var buf bytes.Buffer
		buf.WriteString("kind\tpath\tsent_unix\treturned_s\tlatency_s\n")
		for _, ch := range plan {
			l := "lost"
			if !ch.seen.IsZero() {
				l = f(ch.seen.Sub(ch.done).Seconds())
			}
			fmt.Fprintf(&buf, "%s\t%s\t%.3f\t%.3f\t%s\n", ch.kind, ch.rel, float64(ch.sent.UnixNano())/1e9, ch.done.Sub(ch.sent).Seconds(), l)
		}
		if err := os.WriteFile(o.raw, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// histogram is a Prometheus histogram's cumulative buckets (le → count).
type histogram struct {
	les    []float64
	counts []float64
	count  float64
	sum    float64
}

const lagMetric = "ferry_import_lag_seconds"

// scrape reads the lag histogram from the daemon's /metrics.
func scrape(url string) (histogram, error) {
	resp, err := http.Get(url)
	if err != nil {
		return histogram{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return histogram{}, err
	}
	var h histogram
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, lagMetric) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, lagMetric+"_bucket{"):
			i := strings.Index(name, `le="`)
			if i < 0 {
				continue
			}
			le, err := strconv.ParseFloat(strings.TrimSuffix(name[i+4:], `"}`), 64)
			if err != nil {
				continue
			}
			h.les = append(h.les, le)
			h.counts = append(h.counts, v)
		case name == lagMetric+"_count":
			h.count = v
		case name == lagMetric+"_sum":
			h.sum = v
		}
	}
	return h, nil
}

func (h histogram) minus(b histogram) histogram {
	out := histogram{les: h.les, count: h.count - b.count, sum: h.sum - b.sum}
	for i, c := range h.counts {
		if i < len(b.counts) {
			c -= b.counts[i]
		}
		out.counts = append(out.counts, c)
	}
	return out
}

// quantile is the upper bound of the bucket holding quantile q.
func (h histogram) quantile(q float64) string {
	if h.count <= 0 {
		return "-"
	}
	for i, c := range h.counts {
		if c >= q*h.count {
			if math.IsInf(h.les[i], 1) {
				return "+Inf"
			}
			return strconv.FormatFloat(h.les[i], 'g', -1, 64)
		}
	}
	return "+Inf"
}

func (h histogram) mean() float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	return h.sum / h.count
}
