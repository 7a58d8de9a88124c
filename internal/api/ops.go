package api

// Operation names of the control API: the last element of the request path
// (FSxPathPrefix or HSMPathPrefix + the name). The FSx ones are FSx's own
// operation names; they also name the operation of a ClientRequestToken in
// the catalog.
const (
	OpCreateAssociation    = "CreateDataRepositoryAssociation"
	OpDescribeAssociations = "DescribeDataRepositoryAssociations"
	OpUpdateAssociation    = "UpdateDataRepositoryAssociation"
	OpDeleteAssociation    = "DeleteDataRepositoryAssociation"
	OpDescribeFileSystems  = "DescribeFileSystems"
	OpCreateTask           = "CreateDataRepositoryTask"
	OpDescribeTasks        = "DescribeDataRepositoryTasks"
	OpCancelTask           = "CancelDataRepositoryTask"
)

// FSxOps are the FSx operations a daemon serves, in the order its error
// for an unknown operation lists them.
var FSxOps = []string{
	OpCreateAssociation, OpDescribeAssociations, OpUpdateAssociation, OpDeleteAssociation, OpDescribeFileSystems,
	OpCreateTask, OpDescribeTasks, OpCancelTask,
}

// HSM operations of the control API (ferry hsm
// state|action|release|restore|archive|wait).
const (
	HSMState   = "State"
	HSMAction  = "Action"
	HSMRelease = "Release"
	HSMRestore = "Restore"
	HSMArchive = "Archive"
	HSMWait    = "Wait"
)
