package api

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// A daemon of an older ferry, which serves no status operation, gets a
// clear error naming the fix; one that answers gets its status decoded.
func TestClientStatus(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+FSxPathPrefix+"{op}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write(EncodeError(BadRequestf("unknown operation")))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	defer srv.Close()
	c := NewClient(sock)
	defer c.Close()
	_, err = c.Status(context.Background())
	if !IsCode(err, CodeBadRequest) || !strings.Contains(err.Error(), "older ferry") || !strings.Contains(err.Error(), "ferry mount") {
		t.Fatalf("status of an older daemon: %v", err)
	}
	// An operation the daemon serves keeps its own error.
	if err := c.Call(context.Background(), "Nope", struct{}{}, &struct{}{}); !IsCode(err, CodeBadRequest) || !strings.Contains(err.Error(), "unknown operation") {
		t.Errorf("fsx error: %v", err)
	}
	mux.HandleFunc("POST "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"FileSystemId":"fs-0123456789abcdef0","Time":"2024-01-02T03:04:05+00:00","Nodes":[{"NodeId":"fs-0123456789abcdef0@h","Pid":7,"Self":true}],"Cache":{"LocalBytes":42}}`))
	})
	s, err := c.Status(context.Background())
	if err != nil || s.FileSystemId != "fs-0123456789abcdef0" || len(s.Nodes) != 1 || s.Nodes[0].Pid != 7 || s.Cache.LocalBytes != 42 {
		t.Errorf("status: %+v %v", s, err)
	}
}
