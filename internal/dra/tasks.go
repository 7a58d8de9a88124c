package dra

import (
	"slices"
	"strings"

	"github.com/ferry-hpc/ferry/internal/api"
)

// MaxTaskPaths is FSx's limit on Paths (DataRepositoryTaskPaths).
const MaxTaskPaths = 100

// NormalizeCreateTask validates a CreateDataRepositoryTask request and
// returns its canonical form.
//
//   - EXPORT_TO_REPOSITORY and RELEASE_DATA_FROM_FILESYSTEM Paths are file
//     system paths relative to the file system root; a leading "/" is
//     accepted and dropped ("/ExtData/a" = "ExtData/a"); none = the root.
//   - IMPORT_METADATA_FROM_REPOSITORY Paths are s3:// paths (normalized with
//     a trailing "/").
//   - Report is required (as in FSx). With Enabled, Path is required: an
//     s3:// path or, ferry only, an absolute file system path; Format and
//     Scope default to REPORT_CSV_20191124 and FAILED_FILES_ONLY.
//   - ReleaseConfiguration only with RELEASE_DATA_FROM_FILESYSTEM (Unit
//     DAYS, the default; Value ≥ 0); CapacityToRelease only with
//     AUTO_RELEASE_DATA (≥ 1, GiB).
func NormalizeCreateTask(req api.CreateDataRepositoryTaskRequest) (api.CreateDataRepositoryTaskRequest, error) {
	if err := ValidateFileSystemID(req.FileSystemId); err != nil {
		return req, err
	}
	if req.Type == "" {
		return req, api.BadRequestf("Type is required: use EXPORT_TO_REPOSITORY, IMPORT_METADATA_FROM_REPOSITORY, RELEASE_DATA_FROM_FILESYSTEM or AUTO_RELEASE_DATA")
	}
	if !slices.Contains(api.TaskTypes, req.Type) {
		return req, api.BadRequestf("Type %q is not a task type: use EXPORT_TO_REPOSITORY, IMPORT_METADATA_FROM_REPOSITORY, RELEASE_DATA_FROM_FILESYSTEM or AUTO_RELEASE_DATA", req.Type)
	}
	if len(req.Paths) > MaxTaskPaths {
		return req, api.BadRequestf("Paths has %d paths; the maximum is %d: run several tasks or give parent directories", len(req.Paths), MaxTaskPaths)
	}
	paths := make([]string, 0, len(req.Paths))
	for _, p := range req.Paths {
		var (
			n   string
			err error
		)
		if req.Type == api.TaskImportMetadataFromRepository {
			n, err = normalizeS3Path("Paths", p)
		} else {
			n, err = normalizeTaskPath(p)
		}
		if err != nil {
			return req, err
		}
		paths = append(paths, n)
	}
	if len(req.Paths) > 0 {
		req.Paths = paths
	}
	if req.Report == nil {
		return req, api.BadRequestf("Report is required: give Enabled=false, or Enabled=true,Path=...,Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY")
	}
	r := *req.Report
	if r.Enabled {
		if r.Path == "" {
			return req, api.BadRequestf("Report.Path is required when the report is enabled: give an s3:// path or a file system path such as /reports")
		}
		var err error
		if strings.HasPrefix(r.Path, "s3://") {
			r.Path, err = normalizeS3Path("Report.Path", r.Path)
			r.Path = strings.TrimSuffix(r.Path, "/")
		} else {
			r.Path, err = NormalizeFileSystemPath(r.Path)
			if err != nil {
				err = api.BadRequestf("Report.Path: %s", strings.TrimPrefix(api.AsAPIError(err).Message, "FileSystemPath "))
			}
		}
		if err != nil {
			return req, err
		}
		if r.Format == "" {
			r.Format = api.ReportCSV20191124
		}
		if r.Scope == "" {
			r.Scope = api.ReportFailedFilesOnly
		}
	}
	if r.Format != "" && r.Format != api.ReportCSV20191124 {
		return req, api.BadRequestf("Report.Format %q is not supported: use REPORT_CSV_20191124", r.Format)
	}
	if r.Scope != "" && r.Scope != api.ReportFailedFilesOnly {
		return req, api.BadRequestf("Report.Scope %q is not supported: use FAILED_FILES_ONLY", r.Scope)
	}
	req.Report = &r
	if req.ReleaseConfiguration != nil {
		if req.Type != api.TaskReleaseDataFromFilesystem {
			return req, api.BadRequestf("ReleaseConfiguration applies only to RELEASE_DATA_FROM_FILESYSTEM tasks: leave it out for %s", req.Type)
		}
		rc := *req.ReleaseConfiguration
		if rc.DurationSinceLastAccess != nil {
			d := *rc.DurationSinceLastAccess
			if d.Unit == "" {
				d.Unit = api.UnitDays
			}
			if d.Unit != api.UnitDays {
				return req, api.BadRequestf("ReleaseConfiguration.DurationSinceLastAccess.Unit %q is not supported: use DAYS", d.Unit)
			}
			if d.Value < 0 {
				return req, api.BadRequestf("ReleaseConfiguration.DurationSinceLastAccess.Value %d is negative: give a number of days ≥ 0 (0 releases every archived file)", d.Value)
			}
			rc.DurationSinceLastAccess = &d
		}
		req.ReleaseConfiguration = &rc
	}
	if req.CapacityToRelease != nil {
		if req.Type != api.TaskAutoReleaseData {
			return req, api.BadRequestf("CapacityToRelease applies only to AUTO_RELEASE_DATA tasks: leave it out for %s", req.Type)
		}
		if *req.CapacityToRelease < 1 || *req.CapacityToRelease > 2147483647 {
			return req, api.BadRequestf("CapacityToRelease %d is out of range: give 1 to 2147483647 GiB", *req.CapacityToRelease)
		}
	}
	if err := ValidateTags(req.Tags); err != nil {
		return req, err
	}
	if err := ValidateToken(req.ClientRequestToken); err != nil {
		return req, err
	}
	return req, nil
}

func normalizeTaskPath(p string) (string, error) {
	const field = "Paths"
	if p == "" {
		return "", api.BadRequestf("Paths has an empty path: give paths relative to the file system root, or leave Paths out for the whole file system")
	}
	if err := checkChars(field, p); err != nil {
		return "", err
	}
	if len([]rune(p)) > MaxFileSystemPathLen {
		return "", api.BadRequestf("Paths has a path of more than %d characters: use a shorter path", MaxFileSystemPathLen)
	}
	comps, err := components(field, p)
	if err != nil {
		return "", err
	}
	if len(comps) == 0 {
		return "/", nil // the root, written "/"
	}
	return strings.Join(comps, "/"), nil
}
