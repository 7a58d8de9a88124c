package testutil

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy in front of a server (a MinIO) that a test
// switches, at any moment, between passing traffic and the two ways a
// repository fails that a real server cannot be made to show on demand:
//
//   - Hang: connections are accepted (new ones too) and nothing flows in
//     either direction any more: requests are never answered, responses
//     stop in the middle of their body. Nothing is closed.
//   - Refuse: the listening socket is closed, so new connections are
//     refused (ECONNREFUSED); the connections open are reset.
//
// HangAfter(n) passes n more bytes from the server and then hangs: a
// response that stops in the middle of its body. Delay(d) holds each
// piece from the server for d: a server that answers, slowly.
//
// Pass lets traffic flow again (connections held by Hang go on where they
// stopped; after Refuse the same address listens again). Close stops it;
// StartFaultProxy registers Close with the test.
type FaultProxy struct {
	URL    string // http://127.0.0.1:PORT: point the client's endpoint here
	addr   string
	target string

	mu     sync.Mutex
	mode   Fault
	budget int64         // with mode Pass: bytes from the server until Hang; <0: no limit
	delay  time.Duration // with mode Pass: each piece from the server is held this long
	change chan struct{} // closed and replaced at every mode change
	ln     net.Listener  // nil while refusing
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and every connection's pumps
	served atomic.Int64   // bytes passed from the server to the clients
}

// Fault is a FaultProxy mode.
type Fault int

const (
	Pass Fault = iota
	Hang
	Refuse
)

func (f Fault) String() string {
	return [...]string{"pass", "hang", "refuse"}[f]
}

// StartFaultProxy starts a proxy to target ("http://HOST:PORT" or
// "HOST:PORT") on a free 127.0.0.1 port, passing traffic.
func StartFaultProxy(tb testing.TB, target string) *FaultProxy {
	tb.Helper()
	if len(target) > 7 && target[:7] == "http://" {
		target = target[7:]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &FaultProxy{addr: ln.Addr().String(), target: target, change: make(chan struct{}), conns: map[net.Conn]struct{}{}, budget: -1}
	p.URL = "http://" + p.addr
	p.serve(ln)
	tb.Cleanup(p.Close)
	return p
}

// Set switches the proxy to mode m.
func (p *FaultProxy) Set(m Fault) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.budget = -1
	return p.setLocked(m)
}

// HangAfter passes n more bytes from the server to the clients, then hangs.
func (p *FaultProxy) HangAfter(n int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.setLocked(Pass); err != nil {
		return err
	}
	p.budget = n
	return nil
}

func (p *FaultProxy) setLocked(m Fault) error {
	if p.closed || p.mode == m {
		return nil
	}
	switch {
	case m == Refuse:
		p.ln.Close()
		p.ln = nil
		for c := range p.conns {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, as from a server that went away
			}
			c.Close()
		}
	case p.mode == Refuse:
		// Listen again on the same address; the port was ours a moment
		// ago, but the kernel may take a little to let it go.
		var ln net.Listener
		var err error
		for i := 0; i < 50; i++ {
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("fault proxy: listen again on %s: %w", p.addr, err)
		}
		p.serve(ln)
	}
	p.mode = m
	close(p.change)
	p.change = make(chan struct{})
	return nil
}

// Delay holds every piece of data from the server for d before passing it
// on (0: no delay), while the proxy passes traffic.
func (p *FaultProxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Served is how many bytes the proxy has passed from the server to its
// clients so far: a test measures what a request sequence costs, to hang
// a later one partway with HangAfter.
func (p *FaultProxy) Served() int64 { return p.served.Load() }

// Mode is the proxy's mode now.
func (p *FaultProxy) Mode() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.ln != nil {
			p.ln.Close()
		}
		for c := range p.conns {
			c.Close()
		}
		close(p.change)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// serve accepts on ln until it is closed; p.mu is held or p is new.
func (p *FaultProxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed: Refuse or Close
			}
			p.handle(c)
		}
	}()
}

// handle connects c to the target and pumps both ways.
func (p *FaultProxy) handle(c net.Conn) {
	u, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.closed || p.mode == Refuse {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	done := func() {
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, u)
		p.mu.Unlock()
		c.Close()
		u.Close()
	}
	// Both ends close when either pump fails, or when both saw EOF.
	var once sync.Once
	var eofs atomic.Int32
	run := func(dst, src net.Conn, fromServer bool) {
		defer p.wg.Done()
		if p.pump(dst, src, fromServer) && eofs.Add(1) < 2 {
			return
		}
		once.Do(done)
	}
	go run(u, c, false)
	go run(c, u, true)
}

// pump copies from src to dst, holding each piece while the proxy hangs.
// It returns true when src ended cleanly (EOF, passed on as a half-close:
// the other direction may still flow), false on any failure.
func (p *FaultProxy) pump(dst, src net.Conn, fromServer bool) bool {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			k, ok := p.pass(len(b), fromServer)
			if !ok {
				return false
			}
			if _, werr := dst.Write(b[:k]); werr != nil {
				return false
			}
			if fromServer {
				p.served.Add(int64(k))
			}
			b = b[k:]
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return true
		}
		if err != nil {
			return false
		}
	}
}

// pass waits while the proxy hangs and returns how many of n bytes may
// go on now; false when the connection must end.
func (p *FaultProxy) pass(n int, fromServer bool) (int, bool) {
	for {
		p.mu.Lock()
		m, ch, closed, delay := p.mode, p.change, p.closed, p.delay
		if m == Pass && fromServer && p.budget >= 0 {
			if p.budget == 0 {
				p.setLocked(Hang)
				m, ch = p.mode, p.change
			} else {
				n = int(min(int64(n), p.budget))
				p.budget -= int64(n)
			}
		}
		p.mu.Unlock()
		switch {
		case closed || m == Refuse:
			return 0, false
		case m == Pass:
			if fromServer && delay > 0 {
				time.Sleep(delay)
			}
			return n, true
		}
		<-ch
	}
}
