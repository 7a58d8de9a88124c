package dra

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-hpc/ferry/internal/api"
)

// Describe limits (FSx: AssociationIds/TaskIds ≤50, Filters ≤10 with ≤20
// values, DRA MaxResults 1–25). Tasks: FSx allows MaxResults up to 2^31-1;
// ferry caps a page at MaxTaskPage and defaults to it.
const (
	MaxDescribeIDs      = 50
	MaxFilters          = 10
	MaxFilterValues     = 20
	MaxAssociationsPage = 25
	MaxTaskPage         = 1000
)

// Cursor is the position a NextToken carries: the sort key (CreationTime,
// id) of the last item returned. A catalog can page with
// "WHERE (created, id) > (?, ?) ORDER BY created, id".
type Cursor struct {
	CreatedUnixNano int64
	ID              string
}

func (c Cursor) less(created int64, id string) bool {
	return cmp.Or(cmp.Compare(c.CreatedUnixNano, created), strings.Compare(c.ID, id)) < 0
}

// Query is a validated describe request.
type Query struct {
	IDs        []string            // empty = any
	Filters    map[string][]string // filter name → values (ORed); names ANDed
	MaxResults int
	After      *Cursor // from NextToken
	digest     string  // identifies IDs+Filters; bound into NextToken
}

func queryDigest(op string, ids []string, filters []api.Filter) string {
	b, _ := json.Marshal([]any{op, ids, filters})
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:6])
}

// NextToken encodes a token that resumes this query after c. It is base64
// (FSx's NextToken pattern) of "1.<digest>.<unixnano>.<id>".
func (q Query) NextToken(c Cursor) string {
	raw := "1." + q.digest + "." + strconv.FormatInt(c.CreatedUnixNano, 10) + "." + c.ID
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

func decodeToken(tok, digest string) (*Cursor, error) {
	bad := api.BadRequestf("NextToken %q is not one ferry gave for this request: repeat the request with the same ids and filters, or leave NextToken out to start over", tok)
	if len(tok) > 255 {
		return nil, bad
	}
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return nil, bad
	}
	parts := strings.SplitN(string(raw), ".", 4)
	if len(parts) != 4 || parts[0] != "1" || parts[1] != digest || parts[3] == "" {
		return nil, bad
	}
	n, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return nil, bad
	}
	return &Cursor{CreatedUnixNano: n, ID: parts[3]}, nil
}

func parseQuery(op, idField string, ids []string, validID func(string) error, filters []api.Filter, allowed []string, maxResults *int32, maxPage int, nextToken string) (Query, error) {
	q := Query{MaxResults: maxPage, Filters: map[string][]string{}}
	if len(ids) > MaxDescribeIDs {
		return q, api.BadRequestf("%s has %d ids; the maximum is %d: split the request", idField, len(ids), MaxDescribeIDs)
	}
	for _, id := range ids {
		if err := validID(id); err != nil {
			return q, err
		}
	}
	q.IDs = ids
	if len(filters) > MaxFilters {
		return q, api.BadRequestf("Filters has %d filters; the maximum is %d", len(filters), MaxFilters)
	}
	for _, f := range filters {
		if !slices.Contains(allowed, f.Name) {
			return q, api.BadRequestf("filter name %q is not supported by %s: use %s", f.Name, op, strings.Join(allowed, " or "))
		}
		if len(f.Values) == 0 || len(f.Values) > MaxFilterValues {
			return q, api.BadRequestf("filter %q has %d values: give 1 to %d values", f.Name, len(f.Values), MaxFilterValues)
		}
		if _, dup := q.Filters[f.Name]; dup {
			return q, api.BadRequestf("filter %q is given twice: list all its values in one filter (Values are ORed)", f.Name)
		}
		q.Filters[f.Name] = f.Values
	}
	if maxResults != nil {
		n := int(*maxResults)
		if n < 1 || (maxPage == MaxAssociationsPage && n > maxPage) {
			return q, api.BadRequestf("MaxResults %d is out of range: give 1 to %d", n, maxPage)
		}
		q.MaxResults = min(n, maxPage)
	}
	q.digest = queryDigest(op, ids, filters)
	if nextToken != "" {
		c, err := decodeToken(nextToken, q.digest)
		if err != nil {
			return q, err
		}
		q.After = c
	}
	return q, nil
}

// ParseDescribeAssociations validates a DescribeDataRepositoryAssociations
// request: AssociationIds ≤50, filters file-system-id and
// data-repository-type (ANDed; an unknown name is BadRequest), MaxResults
// 1–25 (default 25), NextToken from an earlier page of the same query.
func ParseDescribeAssociations(req api.DescribeDataRepositoryAssociationsRequest) (Query, error) {
	return parseQuery("DescribeDataRepositoryAssociations", "AssociationIds", req.AssociationIds, ValidateAssociationID,
		req.Filters, []string{api.FilterFileSystemID, api.FilterDataRepositoryType}, req.MaxResults, MaxAssociationsPage, req.NextToken)
}

// MatchAssociation reports whether a passes q's ids and filters.
func (q Query) MatchAssociation(a api.DataRepositoryAssociation) bool {
	if len(q.IDs) > 0 && !slices.Contains(q.IDs, a.AssociationId) {
		return false
	}
	if v, ok := q.Filters[api.FilterFileSystemID]; ok && !slices.Contains(v, a.FileSystemId) {
		return false
	}
	if v, ok := q.Filters[api.FilterDataRepositoryType]; ok && !slices.Contains(v, api.DataRepositoryTypeS3) {
		return false // every ferry association is S3
	}
	return true
}

// page sorts items by (CreationTime, id), drops those up to the cursor and
// cuts a page; it returns the page and the cursor of its last item when more
// follow.
func page[T any](items []T, q Query, key func(T) (int64, string)) ([]T, *Cursor) {
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b T) int {
		ac, ai := key(a)
		bc, bi := key(b)
		return cmp.Or(cmp.Compare(ac, bc), strings.Compare(ai, bi))
	})
	if q.After != nil {
		i := 0
		for i < len(items) {
			c, id := key(items[i])
			if q.After.less(c, id) {
				break
			}
			i++
		}
		items = items[i:]
	}
	if len(items) <= q.MaxResults {
		return items, nil
	}
	items = items[:q.MaxResults]
	c, id := key(items[len(items)-1])
	return items, &Cursor{c, id}
}

// DescribeAssociations answers a describe request over all associations
// known (of every file system the daemon serves). Asked for ids, every id
// must exist (else DataRepositoryAssociationNotFound, as FSx).
func DescribeAssociations(all []api.DataRepositoryAssociation, req api.DescribeDataRepositoryAssociationsRequest) (api.DescribeDataRepositoryAssociationsResponse, error) {
	var resp api.DescribeDataRepositoryAssociationsResponse
	q, err := ParseDescribeAssociations(req)
	if err != nil {
		return resp, err
	}
	for _, id := range q.IDs {
		if !slices.ContainsFunc(all, func(a api.DataRepositoryAssociation) bool { return a.AssociationId == id }) {
			return resp, api.Errorf(api.CodeDataRepositoryAssociationNotFound, "association %s does not exist: check the id with describe-data-repository-associations", id)
		}
	}
	var match []api.DataRepositoryAssociation
	for _, a := range all {
		if q.MatchAssociation(a) {
			match = append(match, a)
		}
	}
	items, next := page(match, q, func(a api.DataRepositoryAssociation) (int64, string) {
		return a.CreationTime.UnixNano(), a.AssociationId
	})
	resp.Associations = items
	if resp.Associations == nil {
		resp.Associations = []api.DataRepositoryAssociation{}
	}
	if next != nil {
		resp.NextToken = q.NextToken(*next)
	}
	return resp, nil
}

// ParseDescribeTasks validates a DescribeDataRepositoryTasks request: TaskIds
// ≤50, filters file-system-id, task-lifecycle, data-repository-association-id,
// MaxResults ≥1 (pages of at most 1000), NextToken of the same query.
func ParseDescribeTasks(req api.DescribeDataRepositoryTasksRequest) (Query, error) {
	q, err := parseQuery("DescribeDataRepositoryTasks", "TaskIds", req.TaskIds, ValidateTaskID, req.Filters,
		[]string{api.FilterFileSystemID, api.FilterTaskLifecycle, api.FilterAssociationID}, req.MaxResults, MaxTaskPage, req.NextToken)
	if err != nil {
		return q, err
	}
	for _, v := range q.Filters[api.FilterTaskLifecycle] {
		if _, ok := taskMoves[api.DataRepositoryTaskLifecycle(v)]; !ok {
			return q, api.BadRequestf("task-lifecycle filter value %q is not a task state: use PENDING, EXECUTING, FAILED, SUCCEEDED, CANCELED or CANCELING", v)
		}
	}
	return q, nil
}

// MatchTask reports whether t passes q. associationsOf returns the ids of
// the associations a task works on (nil when unknown).
func (q Query) MatchTask(t api.DataRepositoryTask, associationsOf func(api.DataRepositoryTask) []string) bool {
	if len(q.IDs) > 0 && !slices.Contains(q.IDs, t.TaskId) {
		return false
	}
	if v, ok := q.Filters[api.FilterFileSystemID]; ok && !slices.Contains(v, t.FileSystemId) {
		return false
	}
	if v, ok := q.Filters[api.FilterTaskLifecycle]; ok && !slices.Contains(v, string(t.Lifecycle)) {
		return false
	}
	if v, ok := q.Filters[api.FilterAssociationID]; ok {
		if associationsOf == nil {
			return false
		}
		if !slices.ContainsFunc(associationsOf(t), func(id string) bool { return slices.Contains(v, id) }) {
			return false
		}
	}
	return true
}

// DescribeTasks answers a describe request over the given tasks.
func DescribeTasks(all []api.DataRepositoryTask, req api.DescribeDataRepositoryTasksRequest, associationsOf func(api.DataRepositoryTask) []string) (api.DescribeDataRepositoryTasksResponse, error) {
	var resp api.DescribeDataRepositoryTasksResponse
	q, err := ParseDescribeTasks(req)
	if err != nil {
		return resp, err
	}
	for _, id := range q.IDs {
		if !slices.ContainsFunc(all, func(t api.DataRepositoryTask) bool { return t.TaskId == id }) {
			return resp, api.Errorf(api.CodeDataRepositoryTaskNotFound, "task %s does not exist: check the id with describe-data-repository-tasks", id)
		}
	}
	var match []api.DataRepositoryTask
	for _, t := range all {
		if q.MatchTask(t, associationsOf) {
			match = append(match, t)
		}
	}
	items, next := page(match, q, func(t api.DataRepositoryTask) (int64, string) { return t.CreationTime.UnixNano(), t.TaskId })
	resp.DataRepositoryTasks = items
	if resp.DataRepositoryTasks == nil {
		resp.DataRepositoryTasks = []api.DataRepositoryTask{}
	}
	if next != nil {
		resp.NextToken = q.NextToken(*next)
	}
	return resp, nil
}
