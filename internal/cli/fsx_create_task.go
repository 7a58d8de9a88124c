package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newFsxCreateTaskCmd(o *fsxOpts) *cobra.Command {
	var (
		typ, fsID, report, token, release, input string
		paths, tags                              []string
		capacity                                 int64
	)
	cmd := &cobra.Command{
		Use:   "create-data-repository-task",
		Short: "Export, import or release in bulk (a data repository task)",
		Long: `Creates a data repository task and returns it at once (PENDING); the daemon
runs the tasks of a file system one at a time, files within a task in
parallel. Follow it with describe-data-repository-tasks.

--type is one of
  EXPORT_TO_REPOSITORY             export what changed since the last export
                                   under --paths (relative to the mount root;
                                   default everything), files that existed before
                                   the association included
  IMPORT_METADATA_FROM_REPOSITORY  import the metadata of new and changed
                                   objects under --paths (s3:// paths)
  RELEASE_DATA_FROM_FILESYSTEM     release archived, clean files under --paths
                                   not accessed for --release-configuration
                                   DurationSinceLastAccess={Unit=DAYS,Value=N}
  AUTO_RELEASE_DATA                release least recently used files until the
                                   store is below its watermark

--report is required, as in FSx: Enabled=false, or
Enabled=true,Path=s3://bucket/prefix (or, ferry only, a path of the file
system such as /reports),Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY;
the failed files are then listed in <Path>/task-<id>/failures.csv.

The same --client-request-token with the same parameters returns the same
task; with other parameters it is an IncompatibleParameterError. Cancel a
task with cancel-data-repository-task: files in flight finish, nothing is
undone. Unlike FSx, an export task may run while auto-export runs (the
export journal keeps them from exporting a file twice).`,
		Example: `  ferry fsx create-data-repository-task --type EXPORT_TO_REPOSITORY \
      --file-system-id "$FSX_ID" --paths ExtData/run42 blended-tropomi \
      --report Enabled=true,Path=s3://bucket/reports,Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY
  ferry fsx create-data-repository-task --type RELEASE_DATA_FROM_FILESYSTEM \
      --file-system-id "$FSX_ID" --paths ExtData --report Enabled=false \
      --release-configuration 'DurationSinceLastAccess={Unit=DAYS,Value=7}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			op := api.OpCreateTask
			var req api.CreateDataRepositoryTaskRequest
			if err := readInputJSON(op, input, &req); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("type") {
				req.Type = api.DataRepositoryTaskType(typ)
			}
			if f.Changed("file-system-id") {
				req.FileSystemId = fsID
			}
			if len(paths) > 0 {
				req.Paths = paths
			}
			if f.Changed("report") {
				req.Report = &api.CompletionReport{}
				if err := decodeParam("--report", []string{report}, req.Report, false); err != nil {
					return err
				}
			}
			if f.Changed("release-configuration") {
				req.ReleaseConfiguration = &api.ReleaseConfiguration{}
				if err := decodeParam("--release-configuration", []string{release}, req.ReleaseConfiguration, false); err != nil {
					return err
				}
			}
			if f.Changed("capacity-to-release") {
				req.CapacityToRelease = &capacity
			}
			if len(tags) > 0 {
				req.Tags = nil
				if err := decodeParam("--tags", tags, &req.Tags, true); err != nil {
					return err
				}
			}
			if f.Changed("client-request-token") {
				req.ClientRequestToken = token
			}
			var missing []string
			for _, m := range []struct {
				flag string
				ok   bool
			}{{"--type", req.Type != ""}, {"--file-system-id", req.FileSystemId != ""}, {"--report", req.Report != nil}} {
				if !m.ok {
					missing = append(missing, m.flag)
				}
			}
			if len(missing) > 0 {
				return paramError("the following arguments are required: %s", strings.Join(missing, ", "))
			}
			t, err := o.pickOne(req.FileSystemId)
			if err != nil {
				return o.serviceError(op, err)
			}
			var resp api.CreateDataRepositoryTaskResponse
			return o.call(cmd.Context(), t, op, req, &resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "EXPORT_TO_REPOSITORY, IMPORT_METADATA_FROM_REPOSITORY, RELEASE_DATA_FROM_FILESYSTEM or AUTO_RELEASE_DATA")
	f.StringArrayVar(&paths, "paths", nil, "paths to work on (file system paths relative to the mount root; s3:// paths for imports), up to 100")
	f.StringVar(&fsID, "file-system-id", "", "the file system (fs-…)")
	f.StringVar(&report, "report", "", "Enabled=true|false,Path=…,Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY (shorthand or JSON)")
	f.StringVar(&token, "client-request-token", "", "idempotency token (1–63 of A-Za-z0-9_.-)")
	f.StringArrayVar(&tags, "tags", nil, "tags: Key=k,Value=v … (shorthand or JSON)")
	f.Int64Var(&capacity, "capacity-to-release", 0, "AUTO_RELEASE_DATA: GiB to release")
	f.StringVar(&release, "release-configuration", "", "RELEASE_DATA_FROM_FILESYSTEM: DurationSinceLastAccess={Unit=DAYS,Value=N} (shorthand or JSON)")
	f.StringVar(&input, "cli-input-json", "", "the request as JSON (or file://PATH); flags given too override its members")
	return cmd
}
