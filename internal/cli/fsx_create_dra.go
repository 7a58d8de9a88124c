package cli

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

const createDRAExample = `  ferry fsx create-data-repository-association \
      --file-system-id "$FSX_ID" \
      --file-system-path "/ExtData" \
      --data-repository-path "s3://dzhang-imi-gchp-test/ExtData" \
      --batch-import-meta-data-on-create \
      --s3 '{"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}}' \
      --tags Key=Name,Value=dra-extdata \
      --client-request-token dra-extdata-001

  # GEOS-Chem's public input data, read without credentials
  ferry fsx create-data-repository-association \
      --file-system-id "$FSX_ID" \
      --file-system-path "/ExtData" \
      --data-repository-path "s3://geos-chem/" \
      --no-sign-request \
      --s3 '{"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}}'`

func newFsxCreateDRACmd(o *fsxOpts) *cobra.Command {
	var (
		fsID, fsPath, repoPath, s3v, token, input string
		chunk                                     int32
		tags                                      []string
		unsigned                                  bool
		payer                                     string
	)
	cmd := &cobra.Command{
		Use:   "create-data-repository-association",
		Short: "Link a file system path to an S3 prefix",
		Long: `Creates a data repository association: the directory --file-system-path of
the file system shows the objects under --data-repository-path, imported
lazily (metadata on first lookup, data on first read).

The command returns at once with the association in CREATING; the daemon then
creates the directory, checks the repository (bucket exists, prefix can be
listed and read, and written when an AutoExportPolicy is set), runs the batch
import if asked, and moves it to AVAILABLE — or MISCONFIGURED with
FailureDetails.Message saying what is missing, re-checked by itself until it
works. Follow it with describe-data-repository-associations.

--s3 and --tags take aws's shorthand or JSON. The same --client-request-token
with the same parameters returns the same association; with other parameters
it is an IncompatibleParameterError.

--no-sign-request and --request-payer are ferry's (FSx has neither): they set
the association's FerryRepositoryAccess, which describe shows, and fix how the
daemon reaches this repository — unsigned, for a public bucket (no credentials
needed, none used; import only: an AutoExportPolicy is refused), or with
x-amz-request-payer: requester, for a requester-pays bucket. Other
associations of the same mount keep the daemon's credentials.`,
		Example: createDRAExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			var req api.CreateDataRepositoryAssociationRequest
			if err := readInputJSON(api.OpCreateAssociation, input, &req); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("file-system-id") {
				req.FileSystemId = fsID
			}
			if f.Changed("file-system-path") {
				req.FileSystemPath = fsPath
			}
			if f.Changed("data-repository-path") {
				req.DataRepositoryPath = repoPath
			}
			b, err := boolPair(f, "batch-import-meta-data-on-create")
			if err != nil {
				return err
			}
			if b != nil {
				req.BatchImportMetaDataOnCreate = b
			}
			if f.Changed("imported-file-chunk-size") {
				req.ImportedFileChunkSize = &chunk
			}
			if err := s3Flag(f, s3v, &req.S3); err != nil {
				return err
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
			if err := accessFlags(f, unsigned, payer, &req.FerryRepositoryAccess); err != nil {
				return err
			}
			if req.FileSystemId == "" {
				return paramError("the following arguments are required: --file-system-id")
			}
			if req.DataRepositoryPath == "" {
				return paramError("the following arguments are required: --data-repository-path")
			}
			t, err := o.pickOne(req.FileSystemId)
			if err != nil {
				return o.serviceError(api.OpCreateAssociation, err)
			}
			var resp api.CreateDataRepositoryAssociationResponse
			return o.call(cmd.Context(), t, api.OpCreateAssociation, req, &resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fsID, "file-system-id", "", "the file system (fs-…; ferry fsx describe-file-systems lists them)")
	f.StringVar(&fsPath, "file-system-path", "", "directory of the file system to link, e.g. /ExtData (at most one level of nesting with others: paths never overlap)")
	f.StringVar(&repoPath, "data-repository-path", "", "the S3 prefix, s3://bucket/prefix/ (a missing trailing / is added)")
	f.Bool("batch-import-meta-data-on-create", false, "import the metadata of every object under the prefix now, in parallel")
	f.Bool("no-batch-import-meta-data-on-create", false, "import metadata lazily, on first lookup (the default)")
	f.Int32Var(&chunk, "imported-file-chunk-size", 1024, "MiB of data one file stripe holds (1–512000)")
	f.StringVar(&s3v, "s3", "", `import/export policies: AutoImportPolicy={Events=[NEW,CHANGED,DELETED]},AutoExportPolicy={Events=[NEW]} or JSON`)
	f.StringArrayVar(&tags, "tags", nil, "tags: Key=k,Value=v … (shorthand or JSON)")
	f.StringVar(&token, "client-request-token", "", "idempotency token (1–63 of A-Za-z0-9_.-)")
	f.BoolVar(&unsigned, "no-sign-request", false, "ferry only: the daemon reads this repository unsigned, without credentials (a public bucket; import only)")
	f.StringVar(&payer, "request-payer", "", `ferry only: "requester" — the daemon's requests to this repository carry x-amz-request-payer: requester (a requester-pays bucket)`)
	f.StringVar(&input, "cli-input-json", "", "the request as JSON (or file://PATH); flags given too override its members")
	return cmd
}

// accessFlags sets the FerryRepositoryAccess of a create request from
// --no-sign-request and --request-payer (when given; they override the
// member of --cli-input-json). A value the daemon would refuse is a usage
// error here already.
func accessFlags(f *pflag.FlagSet, unsigned bool, payer string, dst **api.RepositoryAccess) error {
	if !f.Changed("no-sign-request") && !f.Changed("request-payer") {
		return nil
	}
	r := api.RepositoryAccess{}
	if *dst != nil {
		r = **dst
	}
	if f.Changed("no-sign-request") {
		r.Unsigned = unsigned
	}
	if f.Changed("request-payer") {
		r.RequestPayer = payer
	}
	if err := (s3x.Access{Unsigned: r.Unsigned, RequestPayer: r.RequestPayer}).Validate(); err != nil {
		return paramError("%v", err)
	}
	*dst = &r
	return nil
}
