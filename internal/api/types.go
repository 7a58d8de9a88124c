package api

// Enumerations, with the values of the FSx service model.

// DataRepositoryLifecycle is the state of an association (FSx shape
// DataRepositoryLifecycle).
type DataRepositoryLifecycle string

const (
	LifecycleCreating      DataRepositoryLifecycle = "CREATING"
	LifecycleAvailable     DataRepositoryLifecycle = "AVAILABLE"
	LifecycleMisconfigured DataRepositoryLifecycle = "MISCONFIGURED"
	LifecycleUpdating      DataRepositoryLifecycle = "UPDATING"
	LifecycleDeleting      DataRepositoryLifecycle = "DELETING"
	LifecycleFailed        DataRepositoryLifecycle = "FAILED"
)

// DataRepositoryTaskLifecycle is the state of a task.
type DataRepositoryTaskLifecycle string

const (
	TaskPending   DataRepositoryTaskLifecycle = "PENDING"
	TaskExecuting DataRepositoryTaskLifecycle = "EXECUTING"
	TaskFailed    DataRepositoryTaskLifecycle = "FAILED"
	TaskSucceeded DataRepositoryTaskLifecycle = "SUCCEEDED"
	TaskCanceled  DataRepositoryTaskLifecycle = "CANCELED"
	TaskCanceling DataRepositoryTaskLifecycle = "CANCELING"
)

// DataRepositoryTaskType is the kind of a task.
type DataRepositoryTaskType string

const (
	TaskExportToRepository           DataRepositoryTaskType = "EXPORT_TO_REPOSITORY"
	TaskImportMetadataFromRepository DataRepositoryTaskType = "IMPORT_METADATA_FROM_REPOSITORY"
	TaskReleaseDataFromFilesystem    DataRepositoryTaskType = "RELEASE_DATA_FROM_FILESYSTEM"
	TaskAutoReleaseData              DataRepositoryTaskType = "AUTO_RELEASE_DATA"
)

// TaskTypes lists every task type in model order.
var TaskTypes = []DataRepositoryTaskType{TaskExportToRepository, TaskImportMetadataFromRepository, TaskReleaseDataFromFilesystem, TaskAutoReleaseData}

// EventType is an auto-import or auto-export event.
type EventType string

const (
	EventNew     EventType = "NEW"
	EventChanged EventType = "CHANGED"
	EventDeleted EventType = "DELETED"
)

// EventTypes lists every event in model order (also the canonical order).
var EventTypes = []EventType{EventNew, EventChanged, EventDeleted}

// ReportFormat and ReportScope have one value each in FSx.
type (
	ReportFormat string
	ReportScope  string
)

const (
	ReportCSV20191124      ReportFormat = "REPORT_CSV_20191124"
	ReportFailedFilesOnly  ReportScope  = "FAILED_FILES_ONLY"
	UnitDays               Unit         = "DAYS"
	FileSystemTypeLustre   string       = "LUSTRE"
	DataRepositoryTypeS3   string       = "S3"
	DataRepositoryTypeNFS  string       = "NFS"
	DefaultImportChunkSize int32        = 1024 // MiB, FSx's default ImportedFileChunkSize
)

// Unit is the unit of DurationSinceLastAccess.
type Unit string

// FileSystemLifecycle is the state of a file system.
type FileSystemLifecycle string

const (
	FileSystemAvailable     FileSystemLifecycle = "AVAILABLE"
	FileSystemCreating      FileSystemLifecycle = "CREATING"
	FileSystemFailed        FileSystemLifecycle = "FAILED"
	FileSystemDeleting      FileSystemLifecycle = "DELETING"
	FileSystemMisconfigured FileSystemLifecycle = "MISCONFIGURED"
	FileSystemUpdating      FileSystemLifecycle = "UPDATING"
)

// Tag is a resource tag (FSx shape Tag: Key 1–128, Value 0–256).
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// FailureDetails says why an association or task failed (Message ≤256).
type FailureDetails struct {
	Message string `json:"Message"`
}

// AutoImportPolicy lists the repository events imported automatically.
type AutoImportPolicy struct {
	Events []EventType `json:"Events"`
}

// AutoExportPolicy lists the file system events exported automatically.
type AutoExportPolicy struct {
	Events []EventType `json:"Events"`
}

// S3DataRepositoryConfiguration is the S3 member of an association. An
// absent policy means that direction is off.
type S3DataRepositoryConfiguration struct {
	AutoImportPolicy *AutoImportPolicy `json:"AutoImportPolicy,omitempty"`
	AutoExportPolicy *AutoExportPolicy `json:"AutoExportPolicy,omitempty"`
}

// DataRepositoryAssociation is FSx's DataRepositoryAssociation (the
// FileCache* and NFS members, which FSx for Lustre never sets, are left out).
type DataRepositoryAssociation struct {
	AssociationId               string                         `json:"AssociationId"`
	ResourceARN                 string                         `json:"ResourceARN,omitempty"`
	FileSystemId                string                         `json:"FileSystemId"`
	Lifecycle                   DataRepositoryLifecycle        `json:"Lifecycle"`
	FailureDetails              *FailureDetails                `json:"FailureDetails,omitempty"`
	FileSystemPath              string                         `json:"FileSystemPath"`
	DataRepositoryPath          string                         `json:"DataRepositoryPath"`
	BatchImportMetaDataOnCreate bool                           `json:"BatchImportMetaDataOnCreate"`
	ImportedFileChunkSize       int32                          `json:"ImportedFileChunkSize"`
	S3                          *S3DataRepositoryConfiguration `json:"S3,omitempty"`
	Tags                        []Tag                          `json:"Tags,omitempty"`
	CreationTime                Time                           `json:"CreationTime"`
	// FerryRepositoryAccess is ferry only (FSx has no such member): how
	// the daemon's requests to the repository are made, when not signed
	// with the daemon's credentials. Set at create, never changed.
	FerryRepositoryAccess *RepositoryAccess `json:"FerryRepositoryAccess,omitempty"`
	// FerryStatus is ferry only (FSx has no such member): the progress of
	// the daemon's background work on the association. Absent until there
	// is something to say; FSx clients ignore it.
	FerryStatus *AssociationStatus `json:"FerryStatus,omitempty"`
}

// RequestPayerRequester is the one value of RepositoryAccess.RequestPayer.
const RequestPayerRequester = "requester"

// RepositoryAccess is the ferry-only member FerryRepositoryAccess of an
// association (and of its create request): how the daemon's requests to
// the repository are made. Absent, they are signed with the credentials
// the daemon found (ferry mount's --profile, the environment, ~/.aws, the
// instance metadata service). At most one member is set:
//
//	{"Unsigned": true}           ferry fsx create-data-repository-association --no-sign-request
//	{"RequestPayer": "requester"} ferry fsx create-data-repository-association --request-payer requester
type RepositoryAccess struct {
	// Unsigned: requests carry no credentials and no signature, as aws's
	// --no-sign-request: a public bucket, read by a daemon that may have no
	// credentials at all. Import only: an AutoExportPolicy is refused at
	// create and update, and export tasks and hsm archive are refused on
	// its files.
	Unsigned bool `json:"Unsigned,omitempty"`
	// RequestPayer "requester": every request carries x-amz-request-payer:
	// requester, as aws's --request-payer requester (a requester-pays
	// bucket: the daemon's account pays for requests and bytes).
	RequestPayer string `json:"RequestPayer,omitempty"`
}

// AssociationStatus is the ferry-only progress of an association's
// background work: its batch import, its last repository check, and what a
// pending delete was asked to do (kept so a restarted daemon finishes it).
type AssociationStatus struct {
	BatchImport            *BatchImportStatus `json:"BatchImport,omitempty"`
	LastCheckTime          *Time              `json:"LastCheckTime,omitempty"`
	DeleteDataInFileSystem *bool              `json:"DeleteDataInFileSystem,omitempty"`
	// AutoImport is filled by the daemon when describing an association
	// with an AutoImportPolicy; it is never stored.
	AutoImport *AutoImportStatus `json:"AutoImport,omitempty"`
}

// Auto-import sources (AutoImportStatus.Sources).
const (
	AutoImportSourceEvents = "EVENTS" // ferry mount --events-listen: S3 event notifications by HTTP
	AutoImportSourceSweep  = "SWEEP"  // the periodic sweep of the prefix
	AutoImportSourceSQS    = "SQS"    // ferry mount --events-sqs: S3 event notifications from an SQS queue
)

// AutoImportStatus is the ferry-only state of auto-import, of one
// association (FerryStatus.AutoImport) or of the whole file system
// (FileSystem.FerryStatus.AutoImport). Counts and times are since the
// daemon started.
type AutoImportStatus struct {
	// Sources are what feeds auto-import now (AutoImportSource*); empty
	// when nothing does: the namespace then changes only by listings and
	// import tasks.
	Sources []string `json:"Sources"`
	// LastEventTime is the newest event time among the events applied
	// (the sender's time; the time it was queued when the sender gave
	// none).
	LastEventTime *Time `json:"LastEventTime,omitempty"`
	// EventsApplied counts events applied, whatever they did (duplicates
	// and events that needed no work included).
	EventsApplied int64 `json:"EventsApplied"`
	// Conflicts counts files with local changes whose object changed (a
	// conflict copy kept the local content) or was deleted (the file
	// stayed).
	Conflicts int64 `json:"Conflicts"`
	// RecentConflicts lists the newest conflicts, newest first: at most
	// 20, kept in memory since the daemon started.
	RecentConflicts []ConflictRecord `json:"RecentConflicts,omitempty"`
	// LastSweep is when the last sweep of the prefix ended.
	LastSweep *Time `json:"LastSweep,omitempty"`
	// PendingEvents is the number of events queued and not yet applied
	// (file system only).
	PendingEvents *int64 `json:"PendingEvents,omitempty"`
}

// Conflict kinds (ConflictRecord.Kind).
const (
	ConflictChanged = "CHANGED" // the object changed under local changes: a conflict copy keeps them
	ConflictDeleted = "DELETED" // the object was deleted under local changes: the file stays
)

// ConflictRecord is one conflict of AutoImportStatus.RecentConflicts:
// a file with local changes whose object changed or was deleted.
type ConflictRecord struct {
	// Path is the file under the mount point: for CHANGED it now holds
	// the repository's version, for DELETED the kept local content.
	Path string `json:"Path"`
	// CopyPath is the conflict copy holding the local content (CHANGED
	// only).
	CopyPath string `json:"CopyPath,omitempty"`
	Kind     string `json:"Kind"`
	Time     Time   `json:"Time"`
	// AssociationId and Key name the association and the object's key.
	AssociationId string `json:"AssociationId,omitempty"`
	Key           string `json:"Key,omitempty"`
}

// Batch import states (BatchImportStatus.State).
const (
	BatchImportPending   = "PENDING"   // requested, not started (or to be retried)
	BatchImportRunning   = "RUNNING"   // counters grow as it goes
	BatchImportSucceeded = "SUCCEEDED" // every object of the prefix seen
	BatchImportFailed    = "FAILED"    // stopped; Message says why; retried with the repository check
)

// BatchImportStatus is the progress of BatchImportMetaDataOnCreate.
type BatchImportStatus struct {
	State         string           `json:"State"`
	Objects       int64            `json:"Objects"`
	Files         int64            `json:"Files"`
	Directories   int64            `json:"Directories"`
	Symlinks      int64            `json:"Symlinks"`
	Refused       int64            `json:"Refused"`
	RefusedByCode map[string]int64 `json:"RefusedByCode,omitempty"`
	StartTime     *Time            `json:"StartTime,omitempty"`
	EndTime       *Time            `json:"EndTime,omitempty"`
	Message       string           `json:"Message,omitempty"`
}

// DataRepositoryTaskStatus holds a task's counters.
type DataRepositoryTaskStatus struct {
	TotalCount       int64  `json:"TotalCount"`
	SucceededCount   int64  `json:"SucceededCount"`
	FailedCount      int64  `json:"FailedCount"`
	LastUpdatedTime  *Time  `json:"LastUpdatedTime,omitempty"`
	ReleasedCapacity *int64 `json:"ReleasedCapacity,omitempty"`
}

// CompletionReport configures a task's report. Path is where reports go
// (FSx: a path in the linked repository; ferry also takes a file system path).
type CompletionReport struct {
	Enabled bool         `json:"Enabled"`
	Path    string       `json:"Path,omitempty"`
	Format  ReportFormat `json:"Format,omitempty"`
	Scope   ReportScope  `json:"Scope,omitempty"`
}

// DurationSinceLastAccess is the age a file must have to be released.
type DurationSinceLastAccess struct {
	Unit  Unit  `json:"Unit,omitempty"`
	Value int64 `json:"Value"`
}

// ReleaseConfiguration configures RELEASE_DATA_FROM_FILESYSTEM tasks.
type ReleaseConfiguration struct {
	DurationSinceLastAccess *DurationSinceLastAccess `json:"DurationSinceLastAccess,omitempty"`
}

// DataRepositoryTask is FSx's DataRepositoryTask.
type DataRepositoryTask struct {
	TaskId               string                      `json:"TaskId"`
	Lifecycle            DataRepositoryTaskLifecycle `json:"Lifecycle"`
	Type                 DataRepositoryTaskType      `json:"Type"`
	CreationTime         Time                        `json:"CreationTime"`
	StartTime            *Time                       `json:"StartTime,omitempty"`
	EndTime              *Time                       `json:"EndTime,omitempty"`
	ResourceARN          string                      `json:"ResourceARN,omitempty"`
	Tags                 []Tag                       `json:"Tags,omitempty"`
	FileSystemId         string                      `json:"FileSystemId,omitempty"`
	Paths                []string                    `json:"Paths,omitempty"`
	FailureDetails       *FailureDetails             `json:"FailureDetails,omitempty"`
	Status               *DataRepositoryTaskStatus   `json:"Status,omitempty"`
	Report               *CompletionReport           `json:"Report,omitempty"`
	CapacityToRelease    *int64                      `json:"CapacityToRelease,omitempty"`
	ReleaseConfiguration *ReleaseConfiguration       `json:"ReleaseConfiguration,omitempty"`
}

// FileSystem is FSx's FileSystem as far as ferry has its members, plus
// FerryConfiguration (ferry only).
type FileSystem struct {
	CreationTime        Time                           `json:"CreationTime"`
	FileSystemId        string                         `json:"FileSystemId"`
	FileSystemType      string                         `json:"FileSystemType"`
	Lifecycle           FileSystemLifecycle            `json:"Lifecycle"`
	FailureDetails      *FailureDetails                `json:"FailureDetails,omitempty"`
	StorageCapacity     *int32                         `json:"StorageCapacity,omitempty"` // GiB
	ResourceARN         string                         `json:"ResourceARN,omitempty"`
	Tags                []Tag                          `json:"Tags,omitempty"`
	LustreConfiguration *LustreFileSystemConfiguration `json:"LustreConfiguration,omitempty"`
	FerryConfiguration  *FerryConfiguration            `json:"FerryConfiguration,omitempty"`
	FerryStatus         *FileSystemStatus              `json:"FerryStatus,omitempty"`
	// FerryNodes is ferry only: the daemons (nodes) serving the file
	// system from its catalog, by NodeId: their sessions not expired.
	FerryNodes []FerryNode `json:"FerryNodes,omitempty"`
}

// FerryNode is one daemon serving a file system: its session in the
// catalog, kept alive by a heartbeat (ferry mount --session-ttl).
type FerryNode struct {
	// NodeId names the node's session and its claims in the catalog's
	// queues: <fs-id>@<host>:<mount point>.
	NodeId        string `json:"NodeId"`
	Host          string `json:"Host"`
	MountPoint    string `json:"MountPoint"`
	Pid           int    `json:"Pid"`
	Version       string `json:"Version,omitempty"`
	Started       Time   `json:"Started"`
	LastHeartbeat Time   `json:"LastHeartbeat"`
}

// FileSystemStatus is the ferry-only state of the daemon's background
// work for the whole file system.
type FileSystemStatus struct {
	AutoImport *AutoImportStatus `json:"AutoImport,omitempty"`
}

// LustreFileSystemConfiguration carries the FSx members ferry can fill.
type LustreFileSystemConfiguration struct {
	DeploymentType string `json:"DeploymentType,omitempty"` // ferry: "PERSISTENT_2" (DRAs need it in FSx)
	MountName      string `json:"MountName,omitempty"`
}

// FerryConfiguration is what only ferry has: where the file system lives on
// this machine and how its daemon is reached.
type FerryConfiguration struct {
	StorePath     string `json:"StorePath"`
	MountPoint    string `json:"MountPoint,omitempty"`
	CatalogEngine string `json:"CatalogEngine,omitempty"` // "sqlite" or "postgres"; never the DSN (it may hold a password)
	ControlSocket string `json:"ControlSocket,omitempty"`
	DaemonPid     int    `json:"DaemonPid,omitempty"`
	Version       string `json:"Version,omitempty"`
}

// ARN partition, region and account ferry puts in ResourceARN.
const arnPrefix = "arn:ferry:fsx:local:000000000000:"

// FileSystemARN returns the ResourceARN of a file system.
func FileSystemARN(fsID string) string { return arnPrefix + "file-system/" + fsID }

// AssociationARN returns the ResourceARN of an association, in FSx's form
// association/<fs-id>/<dra-id>.
func AssociationARN(fsID, draID string) string {
	return arnPrefix + "association/" + fsID + "/" + draID
}

// TaskARN returns the ResourceARN of a task.
func TaskARN(taskID string) string { return arnPrefix + "task/" + taskID }
