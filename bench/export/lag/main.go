// Command lag measures export lag from outside a ferry mount: writers create
// and close files under a directory of the mount at a steady rate, and the
// time each close returned is compared with the moment the object appeared in
// the bucket. It is the load generator and probe of bench/export/run.sh.
//
//	go run ./bench/export/lag -endpoint http://127.0.0.1:9000 -bucket b -prefix lag/r1/ \
//	    -dir /mnt/bench/lag/r1 -rate 200 -writers 8 -size 65536 -duration 60s \
//	    [-metrics http://127.0.0.1:9100/metrics]
//
// The bucket is watched with MinIO's ListenBucketNotification (GET
// /BUCKET?events=s3:ObjectCreated:*, a stream of JSON records MinIO sends once
// an object is committed), so every object's arrival is seen once, without
// polling and without loading the server with listings or HEADs. Keys and
// credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
//
// Writer w writes its k-th file at start + (k·writers + w)/rate (open loop: a
// writer that falls behind writes at once and the late files are counted), to
// DIR/wWW/fKKKKKK.bin, each file 'size' bytes written in one call and closed.
// Lag = the object's eventTime − the return of close().
// With -metrics, the daemon's histogram ferry_export_lag_seconds is scraped
// before and after, and the run's quantiles are given as the upper bound of
// the bucket holding them (the daemon's view: the journal append at close →
// its export done; bounds 0.05, 0.1, 0.25, 0.5, 1, 2, 5 … s), with its mean.
//
// Output: one tab-separated line (header with -header) on stdout; every file's
// times to -raw if given.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

type opts struct {
	endpoint, bucket, prefix, dir, metrics, raw string
	rate                                        float64
	writers                                     int
	size                                        int
	duration, drain                             time.Duration
	header                                      bool
}

func main() {
	var o opts
	flag.StringVar(&o.endpoint, "endpoint", "", "S3 endpoint URL of the MinIO the mount exports to (required)")
	flag.StringVar(&o.bucket, "bucket", "", "bucket the directory exports to (required)")
	flag.StringVar(&o.prefix, "prefix", "", "key prefix that -dir exports to, ending in / (required)")
	flag.StringVar(&o.dir, "dir", "", "directory in the mount, inside an association with an AutoExportPolicy (created; required)")
	flag.StringVar(&o.metrics, "metrics", "", "the daemon's Prometheus URL (http://127.0.0.1:PORT/metrics); empty: no daemon view")
	flag.StringVar(&o.raw, "raw", "", "write every file's close and arrival times (TSV) to this file")
	flag.Float64Var(&o.rate, "rate", 50, "files per second, all writers together")
	flag.IntVar(&o.writers, "writers", 8, "writers (goroutines), each with its own directory")
	flag.IntVar(&o.size, "size", 64<<10, "bytes per file")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long the writers write")
	flag.DurationVar(&o.drain, "drain", 120*time.Second, "after the writers stop, how long to wait for the last objects")
	flag.BoolVar(&o.header, "header", false, "print the header line of the output first")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "lag:", err)
		os.Exit(1)
	}
}

// columns of the output line.
var columns = []string{"target_per_s", "achieved_per_s", "files", "late", "seen", "missing",
	"lag_p50_s", "lag_p90_s", "lag_p99_s", "lag_max_s",
	"close_p50_ms", "close_p99_ms", "daemon_count", "daemon_p50_le_s", "daemon_p99_le_s", "daemon_mean_s"}

type file struct {
	key            string
	start, closed  time.Time
	seen, eventT   time.Time
	writer, number int
}

func run(o opts) error {
	if o.endpoint == "" || o.bucket == "" || o.dir == "" || !strings.HasSuffix(o.prefix, "/") {
		return errors.New("-endpoint, -bucket, -dir and -prefix (ending in /) are required")
	}
	if o.rate <= 0 || o.writers <= 0 || o.size <= 0 {
		return errors.New("-rate, -writers and -size must be positive")
	}
	if o.header {
		fmt.Println(strings.Join(columns, "\t"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if err := prepareDirs(o); err != nil {
		return err
	}
	var before histogram
	if o.metrics != "" {
		h, err := scrape(ctx, o.metrics)
		if err != nil {
			return err
		}
		before = h
	}
	w, err := listen(ctx, o)
	if err != nil {
		return err
	}
	r, err := writeAll(o)
	if err != nil {
		return err
	}
	if err := waitArrivals(ctx, o, w, r.files); err != nil {
		return err
	}
	cancel()
	return report(o, w, r, before)
}

// prepareDirs creates each writer's directory and lists it once.
func prepareDirs(o opts) error {
	for w := range o.writers {
		d := filepath.Join(o.dir, fmt.Sprintf("w%02d", w))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		// The first lookup in a directory of an association lists its
		// prefix (lazy import): done here, before the clock runs.
		if _, err := os.Stat(filepath.Join(d, "prime")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("looking up %s/prime: %v", d, err)
		}
	}
	return nil
}

// written is what the writers did.
type written struct {
	files          []file // every file written, with its times
	late           int    // files written more than 50ms after their time
	start, stopped time.Time
}

// writeAll runs the writers (see the package doc) and returns what they
// wrote, or the first error of one.
func writeAll(o opts) (written, error) {
	per := int(math.Ceil(o.duration.Seconds() * o.rate / float64(o.writers)))
	files := make([][]file, o.writers)
	late := make([]int, o.writers)
	buf := make([]byte, o.size)
	rng := rand.NewChaCha8([32]byte{'l', 'a', 'g'})
	rng.Read(buf)
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(o.duration)
	var wg sync.WaitGroup
	errs := make(chan error, o.writers)
	for wr := range o.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := slices.Clone(buf)
			for k := range per {
				at := start.Add(time.Duration(float64(k*o.writers+wr) / o.rate * float64(time.Second)))
				if !at.Before(end) {
					return
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				} else if d < -50*time.Millisecond {
					late[wr]++
				}
				name := fmt.Sprintf("w%02d/f%06d.bin", wr, k)
				copy(b, name) // every file's content differs
				f := file{key: o.prefix + name, writer: wr, number: k, start: time.Now()}
				if err := writeFile(filepath.Join(o.dir, name), b); err != nil {
					errs <- err
					return
				}
				f.closed = time.Now()
				files[wr] = append(files[wr], f)
			}
		}()
	}
	wg.Wait()
	r := written{start: start, stopped: time.Now()}
	close(errs)
	for err := range errs {
		return r, err
	}
	for _, fs := range files {
		r.files = append(r.files, fs...)
	}
	for _, n := range late {
		r.late += n
	}
	return r, nil
}

// waitArrivals waits, at most o.drain, for the objects of all, pushing
// MinIO's event buffer out with filler objects (not in all).
func waitArrivals(ctx context.Context, o opts, w *watcher, all []file) error {
	want := make(map[string]bool, len(all))
	for _, f := range all {
		want[f.key] = true
	}
	deadline := time.Now().Add(o.drain)
	for n := 0; time.Now().Before(deadline) && w.count(want) < len(want); n++ {
		if n%4 == 3 {
			if err := put(ctx, o, fmt.Sprintf("%s~flush/%06d", o.prefix, n)); err != nil {
				return err
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// report prints the output line of the run r (and its raw times with
// -raw), with the daemon's view since before when -metrics is set. It
// fails if an object did not appear.
func report(o opts, w *watcher, r written, before histogram) error {
	all := r.files
	var lags, closes []float64
	seen := 0
	for i := range all {
		f := &all[i]
		closes = append(closes, f.closed.Sub(f.start).Seconds()*1000)
		if t, et, ok := w.get(f.key); ok {
			seen++
			lags = append(lags, et.Sub(f.closed).Seconds())
			f.seen, f.eventT = t, et
		}
	}
	if o.raw != "" {
		if err := writeRaw(o.raw, all); err != nil {
			return err
		}
	}
	dcount, dp50, dp99, dmean := "", "", "", ""
	if o.metrics != "" {
		after, err := scrape(context.Background(), o.metrics)
		if err != nil {
			return err
		}
		d := after.minus(before)
		dcount = strconv.FormatUint(d.count, 10)
		dp50, dp99 = fmtF(d.quantile(0.5)), fmtF(d.quantile(0.99))
		if d.count > 0 {
			dmean = fmtF(d.sum / float64(d.count))
		}
	}
	row := []string{fmtF(o.rate), fmtF(float64(len(all)) / r.stopped.Sub(r.start).Seconds()),
		strconv.Itoa(len(all)), strconv.Itoa(r.late), strconv.Itoa(seen), strconv.Itoa(len(all) - seen),
		fmtF(q(lags, 0.5)), fmtF(q(lags, 0.9)), fmtF(q(lags, 0.99)), fmtF(q(lags, 1)),
		fmtF(q(closes, 0.5)), fmtF(q(closes, 0.99)), dcount, dp50, dp99, dmean}
	fmt.Println(strings.Join(row, "\t"))
	if seen < len(all) {
		return fmt.Errorf("%d of %d objects did not appear within %s of the last close", len(all)-seen, len(all), o.drain)
	}
	return nil
}

func writeFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeRaw(path string, all []file) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	fmt.Fprintln(bw, "key\tstart_unix_ns\tclose_s\tevent_after_close_s\tnotified_after_close_s")
	for _, f := range all {
		seen, ev := "", ""
		if !f.seen.IsZero() {
			seen = fmtF(f.seen.Sub(f.closed).Seconds())
			ev = fmtF(f.eventT.Sub(f.closed).Seconds())
		}
		fmt.Fprintf(bw, "%s\t%d\t%s\t%s\t%s\n", f.key, f.start.UnixNano(), fmtF(f.closed.Sub(f.start).Seconds()), ev, seen)
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fmtF(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// q is the nearest-rank quantile of v (NaN when empty).
func q(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// watcher holds the arrival of every key MinIO announced.
type watcher struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	event map[string]time.Time
}

func (w *watcher) get(key string) (time.Time, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[key]
	return t, w.event[key], ok
}

func (w *watcher) count(want map[string]bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k := range w.seen {
		if want[k] {
			n++
		}
	}
	return n
}

// listen subscribes to the bucket's ObjectCreated events under the prefix and
// records them until ctx ends. It returns once MinIO accepted the
// subscription.
func listen(ctx context.Context, o opts) (*watcher, error) {
	q := url.Values{}
	q.Set("events", "s3:ObjectCreated:*")
	q.Set("prefix", o.prefix)
	q.Set("suffix", "")
	// MinIO sends the response's headers with its first flush, after the
	// first event: filler objects make one.
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := signed(ctx, o, http.MethodGet, "/"+o.bucket+"?"+strings.ReplaceAll(q.Encode(), "+", "%20"), nil)
		done <- result{resp, err}
	}()
	var res result
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	give := time.After(60 * time.Second)
	for n := 0; res.resp == nil && res.err == nil; n++ {
		select {
		case res = <-done:
		case <-tick.C:
			if err := put(ctx, o, fmt.Sprintf("%s~flush/start-%06d", o.prefix, n)); err != nil {
				return nil, err
			}
		case <-give:
			return nil, fmt.Errorf("listening to bucket %s at %s: no answer in 60 s", o.bucket, o.endpoint)
		}
	}
	resp, err := res.resp, res.err
	if err != nil {
		return nil, fmt.Errorf("listening to bucket %s at %s: %w", o.bucket, o.endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		return nil, fmt.Errorf("listening to bucket %s at %s: %s: %s", o.bucket, o.endpoint, resp.Status, b)
	}
	w := &watcher{seen: map[string]time.Time{}, event: map[string]time.Time{}}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			now := time.Now()
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			var ev struct {
				Records []struct {
					EventTime string `json:"eventTime"`
					S3        struct {
						Object struct {
							Key string `json:"key"`
						} `json:"object"`
					} `json:"s3"`
				}
			}
			if json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			w.mu.Lock()
			for _, r := range ev.Records {
				key, err := url.QueryUnescape(r.S3.Object.Key)
				if err != nil {
					key = r.S3.Object.Key
				}
				if _, ok := w.seen[key]; ok {
					continue
				}
				w.seen[key] = now
				if et, err := time.Parse(time.RFC3339Nano, r.EventTime); err == nil {
					w.event[key] = et
				}
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// signed sends a SigV4-signed request for path (with its query) to the endpoint.
func signed(ctx context.Context, o opts, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(o.endpoint, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	creds := aws.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
	if creds.AccessKeyID == "" {
		return nil, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must name MinIO's keys")
	}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, payload, "s3", "us-east-1", time.Now()); err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// put writes a one-byte filler object.
func put(ctx context.Context, o opts, key string) error {
	resp, err := signed(ctx, o, http.MethodPut, "/"+o.bucket+"/"+key, []byte{'.'})
	if err != nil {
		return fmt.Errorf("putting the filler object %s: %w", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("putting the filler object %s: %s: %s", key, resp.Status, b)
	}
	return nil
}

// histogram is a scrape of ferry_export_lag_seconds.
type histogram struct {
	bounds  []float64
	buckets []uint64 // cumulative, per bound
	count   uint64
	sum     float64
}

func scrape(ctx context.Context, u string) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return histogram{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, fmt.Errorf("scraping %s: %w", u, err)
	}
	defer resp.Body.Close()
	var h histogram
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, "ferry_export_lag_seconds") {
			continue
		}
		switch {
		case strings.HasPrefix(name, "ferry_export_lag_seconds_bucket{le=\""):
			le := strings.TrimSuffix(strings.TrimPrefix(name, "ferry_export_lag_seconds_bucket{le=\""), "\"}")
			b, err1 := strconv.ParseFloat(le, 64)
			n, err2 := strconv.ParseUint(rest, 10, 64)
			if err1 != nil || err2 != nil || math.IsInf(b, 1) {
				continue
			}
			h.bounds = append(h.bounds, b)
			h.buckets = append(h.buckets, n)
		case name == "ferry_export_lag_seconds_count":
			h.count, _ = strconv.ParseUint(rest, 10, 64)
		case name == "ferry_export_lag_seconds_sum":
			h.sum, _ = strconv.ParseFloat(rest, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	if h.bounds == nil {
		return h, fmt.Errorf("%s has no ferry_export_lag_seconds histogram", u)
	}
	return h, nil
}

func (h histogram) minus(b histogram) histogram {
	d := histogram{bounds: h.bounds, buckets: slices.Clone(h.buckets), count: h.count - b.count, sum: h.sum - b.sum}
	if len(b.buckets) == len(h.buckets) {
		for i := range d.buckets {
			d.buckets[i] -= b.buckets[i]
		}
	}
	return d
}

// quantile is the upper bound of the bucket holding the p-quantile (+Inf
// above the last bound). Interpolating inside a bucket, as
// histogram_quantile does, would invent precision: the first bucket alone
// spans 0–50 ms.
func (h histogram) quantile(p float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := p * float64(h.count)
	for i, b := range h.bounds {
		if float64(h.buckets[i]) >= rank {
			return b
		}
	}
	return math.Inf(1)
}
