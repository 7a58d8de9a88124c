package importer

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// These tests count the bytes reads of a released file fetch, for random,
// sequential and mixed access patterns, twice: with the importer's own
// counter (BytesFetched) and with what MinIO says it sent from the test's
// bucket (its Prometheus metric minio_bucket_traffic_sent_bytes: bodies
// and headers of every S3 response, the listing's too, so a little more
// than the bodies).

// metricsMinIO starts a MinIO whose Prometheus metrics need no token.
func metricsMinIO(t *testing.T) *testutil.MinIO {
	return testutil.StartMinIOEnv(t, "MINIO_PROMETHEUS_AUTH_TYPE=public")
}

// metricsTTL is how long MinIO (this build) serves its metrics from a
// cache: a value read this long after the last request counts it.
const metricsTTL = 10 * time.Second

// bucketSent is minio_bucket_traffic_sent_bytes of bucket, read once
// metricsTTL has passed since the last request to it (now).
func bucketSent(t testing.TB, mc *testutil.MinIO, bucket string) int64 {
	t.Helper()
	time.Sleep(metricsTTL + 500*time.Millisecond)
	resp, err := http.Get(mc.Endpoint + "/minio/v2/metrics/bucket")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "minio_bucket_traffic_sent_bytes{") || !strings.Contains(line, `bucket="`+bucket+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return int64(v)
	}
	t.Fatalf("MinIO's metrics have no minio_bucket_traffic_sent_bytes for bucket %s", bucket)
	return 0
}

// idle waits until no fetch of the importer runs (readahead in flight
// is counted once it lands).
func (e *env) idle() {
	e.t.Helper()
	testutil.Eventually(e.t, 10*time.Second, "no fetch in flight", func() bool {
		return e.im.Stats().FetchesInFlight == 0
	})
}

// readPieces reads [off, off+n) the way the kernel sends a reader's
// reads through the mount: 128 KiB requests in order.
func (e *env) readPieces(f interface {
	ReadAt([]byte, int64) (int, error)
}, body []byte, off, n int64) {
	e.t.Helper()
	for p := off; p < off+n; p += 128 << 10 {
		k := min(128<<10, off+n-p)
		got, err := e.read(e.im, "ExtData/big", e.open("ExtData/big"), p, k)
		if err != nil {
			e.t.Fatal(err)
		}
		if !bytes.Equal(got, body[p:p+k]) {
			e.t.Fatalf("wrong bytes at %d", p)
		}
	}
}

// check fails unless the bytes fetched since the env was made, by the
// importer's count and by MinIO's, are within [lo, hi]; MinIO's may be
// above the importer's by headers (at most 2 KiB per GET) and the listing.
func (e *env) check(mc *testutil.MinIO, what string, lo, hi int64) {
	t := e.t
	t.Helper()
	e.idle()
	s := e.im.Stats()
	m := bucketSent(t, mc, e.bucket)
	t.Logf("%s: ferry fetched %d bytes, MinIO sent %d bytes (%d GETs)", what, s.BytesFetched, m, s.GetRequests)
	if s.BytesFetched < lo || s.BytesFetched > hi {
		t.Errorf("%s: fetched %d bytes, want %d to %d", what, s.BytesFetched, lo, hi)
	}
	if m < s.BytesFetched || m > hi+s.GetRequests*2048+16<<10 {
		t.Errorf("%s: MinIO sent %d bytes (ferry counted %d), want at most %d + headers of %d GETs", what, m, s.BytesFetched, hi, s.GetRequests)
	}
}

// TestFetchedBytesByPattern: a read at a random place fetches about the
// bytes it reads, not megabytes; a sequential read fetches the file once,
// in few GETs; a NetCDF-like read (header, an index block, one variable of
// eight) fetches at most twice what it reads; and runs that stop short of
// what was read ahead make the window shrink.
func TestFetchedBytesByPattern(t *testing.T) {
	mc := metricsMinIO(t)
	// 64 MiB: 64 KiB chunks (MinChunkSize; the map stays inline).
	const size = 64 * mib
	t.Run("random", func(t *testing.T) {
		t.Parallel()
		e := newEnvOn(t, mc, Config{})
		body := e.bigFile(size)
		f := e.open("ExtData/big")
		// 40 reads of 4 KiB in 40 slots of 1.6 MiB, in random order:
		// never two within a sequential run's slack of each other.
		const reads = 40
		rnd := rand.New(rand.NewPCG(1, 2))
		for _, k := range rnd.Perm(reads) {
			off := int64(k)*(size/reads) + rnd.Int64N(200<<10)
			got, err := e.read(e.im, "ExtData/big", f, off, 4096)
			if err != nil || !bytes.Equal(got, body[off:off+4096]) {
				t.Fatalf("read at %d: %v", off, err)
			}
		}
		// Each 4 KiB read touches one or two 64 KiB chunks; nothing ahead.
		e.check(mc, "40 random 4 KiB reads", reads*MinChunkSize, reads*2*MinChunkSize)
		if s := e.im.Stats(); s.ReadaheadBytes != 0 {
			t.Errorf("random reads fetched %d bytes ahead", s.ReadaheadBytes)
		}
	})
	t.Run("sequential", func(t *testing.T) {
		t.Parallel()
		e := newEnvOn(t, mc, Config{})
		body := e.bigFile(size)
		e.readPieces(e.open("ExtData/big"), body, 0, size)
		e.check(mc, "a sequential read of 64 MiB", size, size)
		// Long GETs: the window grows with the run, GETs are half of it.
		if s := e.im.Stats(); s.GetRequests > 30 {
			t.Errorf("a sequential read of 64 MiB sent %d GETs", s.GetRequests)
		}
	})
	t.Run("netcdf", func(t *testing.T) {
		t.Parallel()
		// The pattern of nccopy -V of one variable of a NetCDF-4 file
		// (strace of bench/netcdf's): small reads in the header, one of
		// an index block far away, then the variable in order.
		e := newEnvOn(t, mc, Config{})
		body := e.bigFile(size)
		f := e.open("ExtData/big")
		for _, r := range [][2]int64{{0, 8}, {0, 512}, {9956, 83}, {3866, 38}, {4024, 512}, {12538, 512}, {5860, 4096}, {26*mib - 4000, 3136}} {
			if _, err := e.read(e.im, "ExtData/big", f, r[0], r[1]); err != nil {
				t.Fatal(err)
			}
		}
		const v = 8 * mib // variable 3 of eight
		e.readPieces(f, body, 3*v, v)
		e.check(mc, "header, index block and one 8 MiB variable", v, 2*v)
	})
	t.Run("shrinks", func(t *testing.T) {
		t.Parallel()
		// Runs of 4 MiB at places far apart: each run's readahead past
		// its end goes unused, and the window shrinks.
		e := newEnvOn(t, mc, Config{})
		body := e.bigFile(size)
		f := e.open("ExtData/big")
		const run, runs = 4 * mib, 12
		var last int64
		for i := range runs {
			e.idle()
			before := e.im.Stats().BytesFetched
			e.readPieces(f, body, int64(i)*(size/runs)/MinChunkSize*MinChunkSize, run)
			e.idle()
			last = e.im.Stats().BytesFetched - before
		}
		// Without shrinking every run fetches run/2 ahead: 24 MiB unused.
		e.check(mc, "12 runs of 4 MiB", runs*run, runs*run+16*mib)
		if last > run+run/4 {
			t.Errorf("the last run fetched %d bytes for its %d; the window did not shrink", last, run)
		}
	})
}
