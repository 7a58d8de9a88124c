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
// Pass lets traffic flow again (connections held by Hang go on where they
// stopped; after Refuse the same address listens again). Close stops it;
// StartFaultProxy registers Close with the test.
type FaultProxy struct {
	URL    string // http://127.0.0.1:PORT: point the client's endpoint here
	addr   string
	target string

	mu     sync.Mutex
	mode   Fault
	change chan struct{} // closed and replaced at every mode change
	ln     net.Listener  // nil while refusing
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and every connection's pumps
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
	p := &FaultProxy{addr: ln.Addr().String(), target: target, change: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.URL = "http://" + p.addr
	p.serve(ln)
	tb.Cleanup(p.Close)
	return p
}

// Set switches the proxy to mode m.
func (p *FaultProxy) Set(m Fault) error {
	p.mu.Lock()
	defer p.mu.Unlock()
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
	run := func(dst, src net.Conn) {
		defer p.wg.Done()
		if p.pump(dst, src) && eofs.Add(1) < 2 {
			return
		}
		once.Do(done)
	}
	go run(u, c)
	go run(c, u)
}

// pump copies from src to dst, holding each piece while the proxy hangs.
// It returns true when src ended cleanly (EOF, passed on as a half-close:
// the other direction may still flow), false on any failure.
func (p *FaultProxy) pump(dst, src net.Conn) bool {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				return false
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return false
			}
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

// pass waits while the proxy hangs; false when the connection must end.
func (p *FaultProxy) pass() bool {
	for {
		p.mu.Lock()
		m, ch, closed := p.mode, p.change, p.closed
		p.mu.Unlock()
		switch {
		case closed || m == Refuse:
			return false
		case m == Pass:
			return true
		}
		<-ch
	}
}
