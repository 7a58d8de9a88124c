package transfer

import (
	"crypto/md5"
	"hash"
	"sync"
	"sync/atomic"

	md5simd "github.com/minio/md5-simd"
)

// MD5 of downloads in SIMD lanes.
//
// Verifying a single-part object means an MD5 over every byte, a serial
// computation within one object. Go's crypto/md5 costs ~1.25–1.7 CPU-ns
// per byte on the project's machine; github.com/minio/md5-simd runs up to
// 16 independent MD5s side by side in the AVX-512 (or 8 in the AVX2) lanes
// of one core, fed by one server goroutine. Measured with a hashing-only
// benchmark (streams fed as fast as they take it, 64 MiB in all): stdlib
// 1.24–1.32 CPU-ns/B however many streams; SIMD 1.89 for one stream, 1.66
// for 2, 0.90 for 4, 0.55 for 8, 0.53 for 16, 0.58 for 32. A lone stream
// is slower in a lane (the server's hand-off per 32 KiB block, and fewer
// than 3 filled lanes are hashed by the scalar routine), so a download
// takes a lane only when enough MD5s are in flight to fill several
// (simdMD5From; the numbers behind it are in docs/benchmarks.md).
const simdMD5From = 3

// maxSIMDHashers bounds the hashers made on one server. md5-simd v1.1.2
// never forgets a closed hasher (its server deletes the wrong key; fixed
// upstream after the last release) and walks all it knows on every cycle,
// so hashers are never closed but reset and reused, and when this many
// are out, further downloads hash with crypto/md5: the server's memory and
// work per cycle stay bounded by this number, never by the file count.
// Two hashers per lane keep every lane busy.
const maxSIMDHashers = 2 * md5simd.Lanes

// md5Hashers hands out the hashers that verify downloads of objects whose
// ETag is a plain MD5. Its one md5simd server (one goroutine, ~1.5 MiB of
// block buffers) runs only while a SIMD hasher is out: it is started by
// the first one handed out and closed when the last one comes back, so an
// Engine needs no Close and leaves no goroutine behind when idle.
type md5Hashers struct {
	// simdFrom: a download's MD5 goes into a SIMD lane when at least this
	// many MD5s are in flight, its own included; 0 = never (stdlib only).
	simdFrom int

	mu       sync.Mutex
	inFlight int              // MD5s in flight, either kind
	srv      md5simd.Server   // running while out > 0; nil otherwise
	out      int              // SIMD hashers handed out
	made     int              // hashers made on srv (≤ maxSIMDHashers)
	idle     []md5simd.Hasher // made on srv, reset, free to hand out

	simdUsed atomic.Int64 // SIMD hashers handed out, ever (for tests)
}

// get returns a hasher for one download and the function that gives it
// back, to be called once when no goroutine uses the hasher any more.
func (m *md5Hashers) get() (hash.Hash, func()) {
	m.mu.Lock()
	m.inFlight++
	if m.simdFrom <= 0 || m.inFlight < m.simdFrom || len(m.idle) == 0 && m.made >= maxSIMDHashers {
		m.mu.Unlock()
		return md5.New(), m.putStd
	}
	if m.srv == nil {
		m.srv = md5simd.NewServer()
	}
	var h md5simd.Hasher
	if n := len(m.idle); n > 0 {
		h, m.idle = m.idle[n-1], m.idle[:n-1]
	} else {
		// NewServer and NewHash are not safe against a concurrent
		// Close; all three run under mu.
		h = m.srv.NewHash()
		m.made++
	}
	m.out++
	m.mu.Unlock()
	m.simdUsed.Add(1)
	return h, func() { m.putSIMD(h) }
}

func (m *md5Hashers) putStd() {
	m.mu.Lock()
	m.inFlight--
	m.mu.Unlock()
}

// putSIMD resets h for reuse (the server drops the state it kept for it)
// or, when it was the last one out, stops the server. The server keeps
// running until then, so h's queued blocks, Reset included, are always
// taken: nothing blocks on a stopped server.
func (m *md5Hashers) putSIMD(h md5simd.Hasher) {
	h.Reset()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight--
	m.out--
	if m.out > 0 {
		m.idle = append(m.idle, h)
		return
	}
	// The server's goroutine ends once it sees Close; its hashers,
	// this one and the idle ones, are dropped with it.
	m.srv.Close()
	m.srv, m.idle, m.made = nil, nil, 0
}
