package api

import "context"

// The control API's status operation (ferry status):
//
//	POST /status   StatusRequest → Status: one view of the file system,
//	               gathered by the daemon in one call
const (
	StatusPath = "/status"
	OpStatus   = "Status" // the operation's name in errors
)

// StatusRequest asks for a Status. It has no member yet: send {}.
type StatusRequest struct{}

// Status is what `ferry status` shows of one file system: its nodes, its
// associations with their import and export backlog, its running tasks and
// the store's cache use. ferry only (FSx has no such operation); member
// names follow FSx's style so --query reads like the fsx commands'.
type Status struct {
	FileSystemId string `json:"FileSystemId"`
	// Time is when the daemon gathered the status.
	Time          Time   `json:"Time"`
	StorePath     string `json:"StorePath"`
	CatalogEngine string `json:"CatalogEngine"`
	// Nodes are the daemons serving the file system (today: the one that
	// answered).
	Nodes        []StatusNode        `json:"Nodes"`
	Associations []StatusAssociation `json:"Associations"`
	// Export is the file system's whole export journal: every
	// association's entries, and entries outside any (skipped when
	// claimed).
	Export ExportStatus `json:"Export"`
	// Import is the file system's queue of import hints and the fetches of
	// file data running now.
	Import StatusImport `json:"Import"`
	// Tasks are the data repository tasks not ended (PENDING, EXECUTING,
	// CANCELING), oldest first.
	Tasks []StatusTask `json:"Tasks"`
	Cache StatusCache  `json:"Cache"`
}

// StatusNode is one daemon serving the file system.
type StatusNode struct {
	// NodeId names the node in the catalog's queues (claims of export
	// entries, import hints) and its session: <fs-id>@<host>:<mount
	// point>.
	NodeId     string `json:"NodeId"`
	Host       string `json:"Host"`
	MountPoint string `json:"MountPoint"`
	Pid        int    `json:"Pid"`
	Version    string `json:"Version,omitempty"`
	StartTime  Time   `json:"StartTime"`
	// LastHeartbeat is the node's latest heartbeat of its session in the
	// catalog.
	LastHeartbeat Time `json:"LastHeartbeat"`
	// Self marks the daemon that answered.
	Self bool `json:"Self"`
}

// StatusAssociation is one association: its lifecycle, its export backlog
// (the journal's entries under its path) and its auto-import activity.
type StatusAssociation struct {
	AssociationId      string                  `json:"AssociationId"`
	FileSystemPath     string                  `json:"FileSystemPath"`
	DataRepositoryPath string                  `json:"DataRepositoryPath"`
	Lifecycle          DataRepositoryLifecycle `json:"Lifecycle"`
	FailureDetails     *FailureDetails         `json:"FailureDetails,omitempty"`
	// AutoImport and AutoExport are the policies' events (empty: off).
	AutoImport []EventType              `json:"AutoImport"`
	AutoExport []EventType              `json:"AutoExport"`
	Export     StatusAssociationBacklog `json:"Export"`
	// ImportActivity is auto-import's state (as describe's
	// FerryStatus.AutoImport: sources, events applied, last event, last
	// sweep, conflicts); absent for an association without an
	// AutoImportPolicy.
	ImportActivity *AutoImportStatus `json:"ImportActivity,omitempty"`
	// BatchImport is the progress of BatchImportMetaDataOnCreate, while
	// it is pending or running, or when it failed.
	BatchImport *BatchImportStatus `json:"BatchImport,omitempty"`
}

// StatusAssociationBacklog is the export journal's backlog under one
// association.
type StatusAssociationBacklog struct {
	// Pending counts entries waiting to be exported (Parked excepted).
	Pending int64 `json:"Pending"`
	// Parked counts entries parked after a permanent failure (retried
	// when the file changes).
	Parked int64 `json:"Parked"`
	// OldestAgeSeconds is the lag: how long the oldest entry (parked ones
	// included) has waited; 0 when none.
	OldestAgeSeconds float64 `json:"OldestAgeSeconds"`
	// OldestAgeBound is set when the association's backlog is too large
	// to read entry by entry: OldestAgeSeconds is then the whole
	// journal's oldest, an upper bound of this association's.
	OldestAgeBound bool `json:"OldestAgeBound,omitempty"`
}

// StatusImport is the file system's import side.
type StatusImport struct {
	// PendingEvents counts queued import hints (events and sweep
	// findings) not yet applied; OldestAgeSeconds is how long the oldest
	// has waited.
	PendingEvents    int64   `json:"PendingEvents"`
	OldestAgeSeconds float64 `json:"OldestAgeSeconds"`
	// FetchesInFlight counts fetches of file data and directory listings
	// running now; FetchesStalled those without a byte for a while.
	FetchesInFlight int64 `json:"FetchesInFlight"`
	FetchesStalled  int64 `json:"FetchesStalled"`
	// Conflicts counts conflicts since the daemon started (auto-import's
	// and import tasks'); RecentConflicts lists the newest, newest first
	// (at most 20; an association's own are also in its ImportActivity).
	Conflicts       int64            `json:"Conflicts"`
	RecentConflicts []ConflictRecord `json:"RecentConflicts,omitempty"`
}

// StatusTask is a task not ended, with its counters.
type StatusTask struct {
	TaskId       string                      `json:"TaskId"`
	Type         DataRepositoryTaskType      `json:"Type"`
	Lifecycle    DataRepositoryTaskLifecycle `json:"Lifecycle"`
	Paths        []string                    `json:"Paths,omitempty"`
	CreationTime Time                        `json:"CreationTime"`
	StartTime    *Time                       `json:"StartTime,omitempty"`
	Status       DataRepositoryTaskStatus    `json:"Status"`
}

// StatusCache is the store's use: file data held locally and released, and
// the space of the store's file system.
type StatusCache struct {
	// LocalBytes is the file data held in the store (allocated blocks of
	// its regular files); ReleasedBytes the data of released files that
	// is not local (their size less what is allocated). Files and
	// ReleasedFiles count regular files, and of them the released ones
	// (wholly or partly). They come from a walk of the store, taken at
	// ScanTime and repeated in the background when a status finds it old
	// (absent until the first walk ends).
	LocalBytes    int64   `json:"LocalBytes"`
	ReleasedBytes int64   `json:"ReleasedBytes"`
	Files         int64   `json:"Files"`
	ReleasedFiles int64   `json:"ReleasedFiles"`
	ScanTime      *Time   `json:"ScanTime,omitempty"`
	ScanSeconds   float64 `json:"ScanSeconds"`
	ScanError     string  `json:"ScanError,omitempty"`
	// FetchedBytes counts file data fetched from the repositories since
	// the daemon started.
	FetchedBytes int64 `json:"FetchedBytes"`
	// The store's file system, as df counts it: Used + Available is the
	// space ordinary users have (blocks reserved for root count in
	// neither).
	StoreSizeBytes      uint64  `json:"StoreSizeBytes"`
	StoreUsedBytes      uint64  `json:"StoreUsedBytes"`
	StoreAvailableBytes uint64  `json:"StoreAvailableBytes"`
	StoreUsedPercent    float64 `json:"StoreUsedPercent"`
	// AutoReleaseAbove is ferry mount --auto-release-above (0: off).
	AutoReleaseAbove float64 `json:"AutoReleaseAbove,omitempty"`
}

// Status returns the daemon's status of its file system.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	err := c.post(ctx, StatusPath, StatusRequest{}, &out)
	return out, err
}
