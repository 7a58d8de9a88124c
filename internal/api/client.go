package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The control API's wire protocol (docs/architecture.md, "Control API"):
// HTTP/1.1 over the daemon's Unix socket; the host name is ignored.
//
//	POST /fsx/<Operation>   body: the FSx request JSON; 200 + the FSx response
//	                        JSON, or an error status + {"__type","Message"}
//	POST /hsm/<Operation>   State, Action, Release, Archive: HSMRequest →
//	                        HSMResponse; Restore: HSMRequest → a stream of
//	                        HSMEvent lines; Wait: HSMRequest → a stream of
//	                        WaitEvent lines
//	GET  /export/Status     ExportStatus (the journal's backlog)
//	POST /status            StatusRequest → Status (ferry status; status.go)
//	GET  /metrics           Prometheus text format
const (
	FSxPathPrefix    = "/fsx/"
	HSMPathPrefix    = "/hsm/"
	MetricsPath      = "/metrics"
	ExportStatusPath = "/export/Status"
)

// HSMRequest names files by absolute path under the daemon's mount point.
type HSMRequest struct {
	Paths     []string `json:"Paths"`
	Recursive bool     `json:"Recursive,omitempty"` // Restore: every file below a directory
	Parallel  int      `json:"Parallel,omitempty"`  // Restore: files restored at once (default 8)
	// Timeout (Wait) is how many seconds the daemon waits before it
	// answers with what is still pending; 0 waits until everything is
	// exported.
	Timeout float64 `json:"Timeout,omitempty"`
}

// HSMFile is the answer for one path of an HSMRequest, in request order.
type HSMFile struct {
	Path      string `json:"Path"`
	Flags     uint32 `json:"Flags"`
	ArchiveId uint32 `json:"ArchiveId,omitempty"`
	Action    string `json:"Action,omitempty"` // hsm_action's text after "PATH: "
	Error     string `json:"Error,omitempty"`  // why this path failed
	Errno     string `json:"Errno,omitempty"`  // strerror text of the cause, as lfs prints it
	// Missing: the repository lacks the file (the mount has no such name,
	// or its object is gone), as opposed to a failure to fetch it.
	Missing bool `json:"Missing,omitempty"`
	// Conflict is set (State) for a conflict copy: the local content
	// auto-import kept when the object of the file changed under it.
	Conflict *HSMConflict `json:"Conflict,omitempty"`
}

// HSMConflict says what a conflict copy is the copy of.
type HSMConflict struct {
	Kind string `json:"Kind"` // CHANGED: the object changed under local changes
	Of   string `json:"Of"`   // the file the copy was made from (its path under the mount)
	Time Time   `json:"Time"` // when the copy was made
}

// HSMResponse answers State, Action and Release.
type HSMResponse struct {
	Files []HSMFile `json:"Files"`
}

// HSMEvent is one line of a Restore stream: progress snapshots (totals
// grow while the tree is walked), a line per failed file, and a last line
// with Done set. Totals count the released files to fetch; LocalFiles and
// LocalBytes count the regular files found already local (no fetch).
type HSMEvent struct {
	TotalFiles int64    `json:"TotalFiles"`
	TotalBytes int64    `json:"TotalBytes"`
	DoneFiles  int64    `json:"DoneFiles"`
	DoneBytes  int64    `json:"DoneBytes"`
	Failed     int64    `json:"Failed"`
	LocalFiles int64    `json:"LocalFiles,omitempty"`
	LocalBytes int64    `json:"LocalBytes,omitempty"`
	File       *HSMFile `json:"File,omitempty"` // a failure
	Done       bool     `json:"Done,omitempty"`
}

// WaitEvent is one line of a Wait stream (ferry hsm wait): a progress
// snapshot about once a second, and a last line with Done set that says
// how the wait ended.
type WaitEvent struct {
	// Pending counts the exports still pending under the paths that hold
	// content closed before the call (parked entries excepted).
	Pending int64 `json:"Pending"`
	Done    bool  `json:"Done,omitempty"`
	// TimedOut (last line): the timeout ended the wait; PendingFiles lists
	// what was still pending (at most WaitListLimit entries).
	TimedOut     bool       `json:"TimedOut,omitempty"`
	PendingFiles []WaitFile `json:"PendingFiles,omitempty"`
	// Failed (last line) lists the entries under the paths whose export
	// failed permanently (parked: retried only when the file changes).
	Failed []WaitFile `json:"Failed,omitempty"`
	// Error (last line): the wait itself failed (the catalog, a bad path).
	Error string `json:"Error,omitempty"`
}

// WaitFile is one export entry a Wait reports: the absolute path under the
// mount, the journal's kind (NEW, CHANGED, DELETED, RENAME), failed attempts
// so far and the last failure.
type WaitFile struct {
	Path      string `json:"Path"`
	Kind      string `json:"Kind"`
	Attempts  int    `json:"Attempts,omitempty"`
	LastError string `json:"LastError,omitempty"`
	Pending   *Time  `json:"PendingSince,omitempty"`
}

// WaitListLimit bounds the entries of WaitEvent.PendingFiles and Failed.
const WaitListLimit = 1000

// ExportStatus is the export backlog of a file system (GET /export/Status):
// entries of the export journal not yet exported, the age of the oldest,
// exports running now and entries parked after a permanent failure.
type ExportStatus struct {
	Pending          int64   `json:"Pending"`
	OldestAgeSeconds float64 `json:"OldestAgeSeconds"`
	InFlight         int64   `json:"InFlight"`
	Parked           int64   `json:"Parked"`
}

// Client calls one daemon's control API.
type Client struct {
	Socket string
	hc     *http.Client
}

// ErrUnreachable wraps failures to reach the daemon at all (no socket,
// connection refused): the daemon is not running.
var ErrUnreachable = errors.New("ferry daemon unreachable")

// NewClient returns a client of the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
		// A daemon that accepts but never answers (hung) must not hang the
		// CLI. Every operation answers its headers quickly (Restore with its
		// first progress line), so this bounds only a stuck daemon.
		ResponseHeaderTimeout: 5 * time.Minute,
	}
	return &Client{Socket: socket, hc: &http.Client{Transport: tr}}
}

// Do posts req as JSON to path and returns the response of a 200; any other
// status is decoded into an *APIError.
func (c *Client) Do(ctx context.Context, path string, req any) (*http.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://ferry"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Socket, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e APIError
	if resp.StatusCode == http.StatusNotFound && json.Unmarshal(data, &e) != nil {
		// Every operation of a path the daemon serves answers in JSON; a
		// plain 404 is a path it does not serve at all.
		return nil, &APIError{Code: CodeBadRequest, Message: fmt.Sprintf("the daemon at %s does not serve %s: it runs an older ferry; remount the file system with this one (ferry umount, then ferry mount)", c.Socket, path)}
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, &APIError{Code: CodeInternalServerError, Message: fmt.Sprintf("daemon answered %s: %.200s", resp.Status, data)}
	}
	return nil, &e
}

// Call runs one FSx operation: req is its request, resp a pointer to its
// response. A service error is an *APIError.
func (c *Client) Call(ctx context.Context, operation string, req, resp any) error {
	return c.post(ctx, FSxPathPrefix+operation, req, resp)
}

// HSM runs an hsm operation that answers with one JSON document.
func (c *Client) HSM(ctx context.Context, operation string, req HSMRequest) (HSMResponse, error) {
	var out HSMResponse
	err := c.post(ctx, HSMPathPrefix+operation, req, &out)
	return out, err
}

// Restore runs hsm Restore and calls fn for each event of its stream.
func (c *Client) Restore(ctx context.Context, req HSMRequest, fn func(HSMEvent)) error {
	return stream(ctx, c, HSMRestore, req, fn, func(ev HSMEvent) bool { return ev.Done })
}

// Wait runs hsm Wait and calls fn for each event of its stream; the last
// one has Done set.
func (c *Client) Wait(ctx context.Context, req HSMRequest, fn func(WaitEvent)) error {
	return stream(ctx, c, HSMWait, req, fn, func(ev WaitEvent) bool { return ev.Done })
}

// stream posts an hsm operation answered by a stream of JSON lines and
// calls fn for each until last says the stream is complete.
func stream[E any](ctx context.Context, c *Client, op string, req HSMRequest, fn func(E), last func(E) bool) error {
	resp, err := c.Do(ctx, HSMPathPrefix+op, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev E
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: the daemon's answer ended early: %v", strings.ToLower(op), err)
		}
		fn(ev)
		if last(ev) {
			return nil
		}
	}
}

// ExportStatus returns the daemon's export backlog.
func (c *Client) ExportStatus(ctx context.Context) (ExportStatus, error) {
	var out ExportStatus
	b, err := c.get(ctx, ExportStatusPath)
	if err == nil {
		err = json.Unmarshal([]byte(b), &out)
	}
	return out, err
}

// Metrics returns the daemon's metrics in Prometheus text format.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	return c.get(ctx, MetricsPath)
}

func (c *Client) get(ctx context.Context, path string) (string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://ferry"+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return "", fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: the daemon answered %s: %.200s", path, resp.Status, b)
	}
	return string(b), err
}

func (c *Client) post(ctx context.Context, path string, req, out any) error {
	resp, err := c.Do(ctx, path, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: cannot read the daemon's answer: %v", path, err)
	}
	return nil
}

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }
