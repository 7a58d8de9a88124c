package transfer

import (
	"bytes"
	"crypto/md5"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestMD5Hashers hashes more streams at once than the SIMD hashers it may
// make, in random write sizes, and checks every sum against crypto/md5, the
// bound on hashers (the rest fall back to crypto/md5), the choice by MD5s in
// flight, and that the server (its goroutine too) is stopped once the last
// hasher is back.
func TestMD5Hashers(t *testing.T) {
	const streams = maxSIMDHashers + 8
	var m md5Hashers
	m.simdFrom = 3
	type got struct {
		sum  [md5.Size]byte
		want [md5.Size]byte
	}
	results := make([]got, streams)
	var (
		started sync.WaitGroup // every stream holds its hasher until all have one
		wg      sync.WaitGroup
	)
	started.Add(streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, done := m.get()
			started.Done()
			started.Wait()
			rng := mrand.New(mrand.NewPCG(uint64(i), 7))
			data := make([]byte, rng.IntN(3<<20))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			for p := data; len(p) > 0; {
				n := min(len(p), 1+rng.IntN(100<<10))
				h.Write(p[:n])
				p = p[n:]
			}
			copy(results[i].sum[:], h.Sum(nil))
			results[i].want = md5.Sum(data)
			done()
		}()
	}
	wg.Wait()
	for i, r := range results {
		if !bytes.Equal(r.sum[:], r.want[:]) {
			t.Errorf("stream %d: MD5 %x, want %x", i, r.sum, r.want)
		}
	}
	// The first two found fewer than 3 MD5s in flight; of the rest, at
	// most maxSIMDHashers got a lane.
	if n := m.simdUsed.Load(); n < 1 || n > maxSIMDHashers {
		t.Errorf("%d SIMD hashers handed out, want 1..%d", n, maxSIMDHashers)
	}
	m.mu.Lock()
	if m.srv != nil || m.inFlight != 0 || m.out != 0 || len(m.idle) != 0 {
		t.Errorf("after the last hasher came back: server %v, in flight %d, out %d, idle %d; want all gone",
			m.srv != nil, m.inFlight, m.out, len(m.idle))
	}
	m.mu.Unlock()
	testutil.Eventually(t, 10*time.Second, "the md5simd server goroutine to end", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "md5Server).process")
	})
}

// TestMD5HashersReuse checks that a reused SIMD hasher starts from a clean
// state, and that streams of one byte, one block and none hash correctly.
func TestMD5HashersReuse(t *testing.T) {
	var m md5Hashers
	m.simdFrom = 1
	keep, keepDone := m.get() // keeps the server up, so the next hashers are reused
	defer keepDone()
	keep.Write([]byte("x"))
	for _, data := range [][]byte{nil, []byte("a"), bytes.Repeat([]byte("b"), 64), bytes.Repeat([]byte("c"), 100<<10)} {
		h, done := m.get()
		h.Write(data)
		want := md5.Sum(data)
		if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
			t.Errorf("%d bytes: MD5 %x, want %x", len(data), got, want)
		}
		done()
	}
	if m.made != 2 {
		t.Errorf("made %d hashers for 2 at a time, want 2 (reused)", m.made)
	}
}
