package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/mounts"
)

// The control API (wire protocol in docs/architecture.md, "Control plane",
// and internal/api/client.go): HTTP/1.1 + JSON on the
// Unix socket <runtime dir>/<fs-id>.sock, mode 0600, so only the daemon's
// owner (and root) can manage the file system.

// listenControl creates the socket with mode 0600 from the start: it is
// bound under a temporary name, restricted, then renamed into place, so no
// one can connect through a wider mode in between. A socket left by a
// killed daemon is replaced (register already made sure no live daemon
// owns the id).
func listenControl(dir, id string) (net.Listener, string, error) {
	p := mounts.SocketPath(dir, id)
	tmp := p + ".tmp." + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, "", fmt.Errorf("control socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, "", fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, "", fmt.Errorf("control socket: %w", err)
	}
	return l, p, nil
}

// maxRequest bounds a request body (the largest FSx request is far below).
const maxRequest = 1 << 20

func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.FSxPathPrefix+"{op}", d.serveFSx)
	mux.HandleFunc("POST "+api.HSMPathPrefix+"{op}", d.serveHSM)
	mux.Handle("GET "+api.MetricsPath, promhttp.HandlerFor(d.metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+api.ExportStatusPath, d.serveExportStatus)
	mux.HandleFunc("POST "+api.StatusPath, func(w http.ResponseWriter, r *http.Request) { call(w, r, api.OpStatus, d.status) })
	return mux
}

// writeJSON answers 200 with v.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// writeError answers with the APIError in err (InternalServerError for
// anything else) and its status.
func writeError(w http.ResponseWriter, err error) {
	e := api.AsAPIError(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.HTTPStatus())
	w.Write(append(api.EncodeError(e), '\n'))
}

// call decodes the request of op strictly, runs fn and answers.
func call[Req, Resp any](w http.ResponseWriter, r *http.Request, op string, fn func(context.Context, Req) (Resp, error)) {
	var req Req
	if err := api.DecodeRequest(op, http.MaxBytesReader(w, r.Body, maxRequest), &req); err != nil {
		writeError(w, err)
		return
	}
	resp, err := fn(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, resp)
}

func (d *Daemon) serveFSx(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	switch op {
	case api.OpCreateAssociation:
		call(w, r, op, d.assoc.Create)
	case api.OpDescribeAssociations:
		call(w, r, op, d.describeAssociations)
	case api.OpUpdateAssociation:
		call(w, r, op, d.assoc.Update)
	case api.OpDeleteAssociation:
		call(w, r, op, d.assoc.Delete)
	case api.OpDescribeFileSystems:
		call(w, r, op, d.describeFileSystems)
	case api.OpCreateTask:
		call(w, r, op, d.createTask)
	case api.OpDescribeTasks:
		call(w, r, op, d.describeTasks)
	case api.OpCancelTask:
		call(w, r, op, d.cancelTask)
	default:
		writeError(w, api.BadRequestf("unknown operation %q: this daemon serves %s", op, strings.Join(api.FSxOps, ", ")))
	}
}

// describeFileSystems describes the one file system this daemon serves.
func (d *Daemon) describeFileSystems(ctx context.Context, req api.DescribeFileSystemsRequest) (api.DescribeFileSystemsResponse, error) {
	out := api.DescribeFileSystemsResponse{FileSystems: []api.FileSystem{}}
	if req.MaxResults != nil && *req.MaxResults < 1 {
		return out, api.BadRequestf("MaxResults %d: use at least 1", *req.MaxResults)
	}
	if req.NextToken != "" {
		return out, api.BadRequestf("NextToken %q is not from this daemon: a daemon serves one file system, so there is never a next page", req.NextToken)
	}
	if len(req.FileSystemIds) > 0 && !containsString(req.FileSystemIds, d.ID()) {
		return out, api.Errorf(api.CodeFileSystemNotFound, "file system %s is not served by this daemon (it serves %s)", strings.Join(req.FileSystemIds, ", "), d.ID())
	}
	fsys := api.FileSystem{
		CreationTime:        api.NewTime(d.id.CreationTime),
		FileSystemId:        d.ID(),
		FileSystemType:      api.FileSystemTypeLustre,
		Lifecycle:           api.FileSystemAvailable,
		ResourceARN:         api.FileSystemARN(d.ID()),
		LustreConfiguration: &api.LustreFileSystemConfiguration{DeploymentType: "PERSISTENT_2", MountName: "ferry"},
		FerryConfiguration: &api.FerryConfiguration{
			StorePath:     d.cfg.Store,
			MountPoint:    d.cfg.MountPoint,
			CatalogEngine: strings.SplitN(d.cfg.Catalog, "://", 2)[0],
			ControlSocket: d.sock,
			DaemonPid:     os.Getpid(),
			Version:       d.cfg.Version,
		},
	}
	var err error
	if fsys.FerryNodes, err = d.ferryNodes(ctx); err != nil {
		return out, err
	}
	if ai := d.fileSystemAutoImport(ctx); ai != nil {
		fsys.FerryStatus = &api.FileSystemStatus{AutoImport: ai}
	}
	if sf, err := d.store.Statfs(); err == nil {
		gib := int32(min(uint64(sf.Blocks)*uint64(sf.Bsize)>>30, 1<<31-1))
		fsys.StorageCapacity = &gib
	}
	out.FileSystems = append(out.FileSystems, fsys)
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
