package testutil

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// RequestLog is a reverse proxy in front of a server that records every
// request's method and query, so tests can count what a command sent (for
// example that a no-op sync sends nothing but listings).
type RequestLog struct {
	URL string // point the client's endpoint here
	mu  sync.Mutex
	req []string
	rec []Request
}

// Request is one request a RequestLog saw, with its headers.
type Request struct {
	Method, Path, RawQuery string
	Header                 http.Header
}

// NewRequestLog starts a recording proxy to target on 127.0.0.1.
func NewRequestLog(tb testing.TB, target string) *RequestLog {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	l := &RequestLog{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.req = append(l.req, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		l.rec = append(l.rec, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
		l.mu.Unlock()
		// Keep the Host header the client signed.
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	l.URL = srv.URL
	return l
}

// Requests returns the requests seen so far ("GET /bucket?list-type=2…").
func (l *RequestLog) Requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.req...)
}

// Records returns the requests seen so far with their headers (to check
// what a client signed or sent, such as x-amz-request-payer).
func (l *RequestLog) Records() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.rec...)
}

// Reset forgets the requests seen so far.
func (l *RequestLog) Reset() {
	l.mu.Lock()
	l.req, l.rec = nil, nil
	l.mu.Unlock()
}
