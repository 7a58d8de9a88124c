package api

// Requests and responses, one pair per operation, named as in FSx. Optional
// members whose absence means "use the default" are pointers.

// Filter is a describe filter: Values are ORed, filters are ANDed.
type Filter struct {
	Name   string   `json:"Name"`
	Values []string `json:"Values"`
}

// Filter names FSx accepts on DescribeDataRepositoryAssociations and
// DescribeDataRepositoryTasks respectively.
const (
	FilterFileSystemID       = "file-system-id"
	FilterDataRepositoryType = "data-repository-type"
	FilterTaskLifecycle      = "task-lifecycle"
	FilterAssociationID      = "data-repository-association-id"
)

type CreateDataRepositoryAssociationRequest struct {
	FileSystemId                string                         `json:"FileSystemId"`
	FileSystemPath              string                         `json:"FileSystemPath,omitempty"`
	DataRepositoryPath          string                         `json:"DataRepositoryPath"`
	BatchImportMetaDataOnCreate *bool                          `json:"BatchImportMetaDataOnCreate,omitempty"`
	ImportedFileChunkSize       *int32                         `json:"ImportedFileChunkSize,omitempty"`
	S3                          *S3DataRepositoryConfiguration `json:"S3,omitempty"`
	ClientRequestToken          string                         `json:"ClientRequestToken,omitempty"`
	Tags                        []Tag                          `json:"Tags,omitempty"`
	// FerryRepositoryAccess is ferry only: see RepositoryAccess.
	FerryRepositoryAccess *RepositoryAccess `json:"FerryRepositoryAccess,omitempty"`
}

type CreateDataRepositoryAssociationResponse struct {
	Association *DataRepositoryAssociation `json:"Association"`
}

type DescribeDataRepositoryAssociationsRequest struct {
	AssociationIds []string `json:"AssociationIds,omitempty"`
	Filters        []Filter `json:"Filters,omitempty"`
	MaxResults     *int32   `json:"MaxResults,omitempty"` // 1–25
	NextToken      string   `json:"NextToken,omitempty"`
}

type DescribeDataRepositoryAssociationsResponse struct {
	Associations []DataRepositoryAssociation `json:"Associations"`
	NextToken    string                      `json:"NextToken,omitempty"`
}

type UpdateDataRepositoryAssociationRequest struct {
	AssociationId         string                         `json:"AssociationId"`
	ClientRequestToken    string                         `json:"ClientRequestToken,omitempty"`
	ImportedFileChunkSize *int32                         `json:"ImportedFileChunkSize,omitempty"`
	S3                    *S3DataRepositoryConfiguration `json:"S3,omitempty"`
}

type UpdateDataRepositoryAssociationResponse struct {
	Association *DataRepositoryAssociation `json:"Association"`
}

type DeleteDataRepositoryAssociationRequest struct {
	AssociationId          string `json:"AssociationId"`
	ClientRequestToken     string `json:"ClientRequestToken,omitempty"`
	DeleteDataInFileSystem *bool  `json:"DeleteDataInFileSystem,omitempty"`
}

type DeleteDataRepositoryAssociationResponse struct {
	AssociationId          string                  `json:"AssociationId"`
	Lifecycle              DataRepositoryLifecycle `json:"Lifecycle"`
	DeleteDataInFileSystem bool                    `json:"DeleteDataInFileSystem"`
}

type CreateDataRepositoryTaskRequest struct {
	Type                 DataRepositoryTaskType `json:"Type"`
	Paths                []string               `json:"Paths,omitempty"`
	FileSystemId         string                 `json:"FileSystemId"`
	Report               *CompletionReport      `json:"Report"`
	ClientRequestToken   string                 `json:"ClientRequestToken,omitempty"`
	Tags                 []Tag                  `json:"Tags,omitempty"`
	CapacityToRelease    *int64                 `json:"CapacityToRelease,omitempty"`
	ReleaseConfiguration *ReleaseConfiguration  `json:"ReleaseConfiguration,omitempty"`
}

type CreateDataRepositoryTaskResponse struct {
	DataRepositoryTask *DataRepositoryTask `json:"DataRepositoryTask"`
}

type DescribeDataRepositoryTasksRequest struct {
	TaskIds    []string `json:"TaskIds,omitempty"`
	Filters    []Filter `json:"Filters,omitempty"`
	MaxResults *int32   `json:"MaxResults,omitempty"`
	NextToken  string   `json:"NextToken,omitempty"`
}

type DescribeDataRepositoryTasksResponse struct {
	DataRepositoryTasks []DataRepositoryTask `json:"DataRepositoryTasks"`
	NextToken           string               `json:"NextToken,omitempty"`
}

type CancelDataRepositoryTaskRequest struct {
	TaskId string `json:"TaskId"`
}

type CancelDataRepositoryTaskResponse struct {
	Lifecycle DataRepositoryTaskLifecycle `json:"Lifecycle"`
	TaskId    string                      `json:"TaskId"`
}

type DescribeFileSystemsRequest struct {
	FileSystemIds []string `json:"FileSystemIds,omitempty"`
	MaxResults    *int32   `json:"MaxResults,omitempty"`
	NextToken     string   `json:"NextToken,omitempty"`
}

type DescribeFileSystemsResponse struct {
	FileSystems []FileSystem `json:"FileSystems"`
	NextToken   string       `json:"NextToken,omitempty"`
}
