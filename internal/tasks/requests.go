package tasks

import (
	"context"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

// NewTask builds the task a normalized create request makes, in PENDING.
func NewTask(req api.CreateDataRepositoryTaskRequest, id string, now time.Time) api.DataRepositoryTask {
	return api.DataRepositoryTask{
		TaskId: id, Lifecycle: api.TaskPending, Type: req.Type,
		CreationTime: api.NewTime(now), ResourceARN: api.TaskARN(id), Tags: req.Tags,
		FileSystemId: req.FileSystemId, Paths: req.Paths, Report: req.Report,
		CapacityToRelease: req.CapacityToRelease, ReleaseConfiguration: req.ReleaseConfiguration,
	}
}

// AssociationIDs returns the associations a task works on (the
// data-repository-association-id filter of describe): those holding or
// below one of its file system paths, or whose repository holds one of its
// s3:// paths; every association when it has no paths. Paths matching none
// are left out here; the task fails on them when it runs.
func AssociationIDs(t api.DataRepositoryTask, as []api.DataRepositoryAssociation) []string {
	var out []string
	for _, a := range as {
		if len(t.Paths) == 0 {
			out = append(out, a.AssociationId)
			continue
		}
		dir, err := keypath.StoreDir(a.FileSystemPath)
		if err != nil {
			continue
		}
		for _, p := range t.Paths {
			match := false
			if t.Type == api.TaskImportMetadataFromRepository {
				u, err1 := s3x.ParseURL(p)
				r, err2 := s3x.ParseURL(a.DataRepositoryPath)
				match = err1 == nil && err2 == nil && u.Bucket == r.Bucket && strings.HasPrefix(u.Dir().Key, r.Dir().Key)
			} else {
				rel := keypath.FromFSx(p)
				_, in := keypath.Within(dir, rel)
				_, above := keypath.Within(rel, dir)
				match = in || above
			}
			if match {
				out = append(out, a.AssociationId)
				break
			}
		}
	}
	return out
}

// Create is CreateDataRepositoryTask: it validates the request, answers a
// replayed ClientRequestToken with the task it made, records a new task in
// PENDING with its token in one transaction, wakes the runner and returns
// the task at once.
func (r *Runner) Create(ctx context.Context, req api.CreateDataRepositoryTaskRequest) (api.CreateDataRepositoryTaskResponse, error) {
	var out api.CreateDataRepositoryTaskResponse
	n, err := dra.NormalizeCreateTask(req)
	if err != nil {
		return out, err
	}
	fs, err := r.cfg.Catalog.FileSystem(ctx)
	if err != nil {
		return out, err
	}
	if n.FileSystemId != fs.FileSystemId {
		return out, api.Errorf(api.CodeFileSystemNotFound, "file system %s is not served here (this is %s): check --file-system-id (describe-file-systems lists them)", n.FileSystemId, fs.FileSystemId)
	}
	fp := dra.TaskFingerprint(n)
	replay := func(id string) (api.CreateDataRepositoryTaskResponse, error) {
		t, err := r.cfg.Catalog.Task(ctx, id)
		if err != nil {
			return out, err
		}
		return api.CreateDataRepositoryTaskResponse{DataRepositoryTask: &t}, nil
	}
	if id, ok, err := dra.CheckToken(ctx, r.cfg.Catalog, api.OpCreateTask, n.ClientRequestToken, fp); err != nil {
		return out, err
	} else if ok {
		return replay(id)
	}
	as, err := r.cfg.Catalog.Associations(ctx)
	if err != nil {
		return out, err
	}
	if len(as) == 0 {
		return out, api.BadRequestf("file system %s has no data repository association: create one with create-data-repository-association first", fs.FileSystemId)
	}
	t := NewTask(n, dra.NewTaskID(), r.cfg.Now())
	var tok *dra.TokenRecord
	if n.ClientRequestToken != "" {
		tok = &dra.TokenRecord{Operation: api.OpCreateTask, Token: n.ClientRequestToken, Fingerprint: fp, ResourceID: t.TaskId}
	}
	_, created, err := r.cfg.Catalog.CreateTask(ctx, t, AssociationIDs(t, as), tok)
	if err != nil {
		return out, err
	}
	if !created { // the same token won a race: answer as its replay
		id, _, err := dra.CheckToken(ctx, r.cfg.Catalog, api.OpCreateTask, n.ClientRequestToken, fp)
		if err != nil {
			return out, err
		}
		return replay(id)
	}
	r.log.Info("task created", "task", t.TaskId, "type", t.Type, "paths", t.Paths)
	r.Submit()
	return api.CreateDataRepositoryTaskResponse{DataRepositoryTask: &t}, nil
}

// Describe is DescribeDataRepositoryTasks, answered from the catalog (the
// counters are as of the runner's last flush, at most FlushInterval old).
func (r *Runner) Describe(ctx context.Context, req api.DescribeDataRepositoryTasksRequest) (api.DescribeDataRepositoryTasksResponse, error) {
	out := api.DescribeDataRepositoryTasksResponse{DataRepositoryTasks: []api.DataRepositoryTask{}}
	q, err := dra.ParseDescribeTasks(req)
	if err != nil {
		return out, err
	}
	items, cur, err := r.cfg.Catalog.DescribeTasks(ctx, q)
	if err != nil {
		return out, err
	}
	out.DataRepositoryTasks = append(out.DataRepositoryTasks, items...)
	if cur != nil {
		out.NextToken = q.NextToken(*cur)
	}
	return out, nil
}
