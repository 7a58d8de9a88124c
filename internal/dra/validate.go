package dra

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Limits from the FSx service model (shapes Namespace, ArchivePath,
// Megabytes, Tags, TagKey, TagValue, ClientRequestToken, ErrorMessage).
const (
	MaxFileSystemPathLen     = 4096
	MaxDataRepositoryPathLen = 4357
	MinChunkSize             = 1
	MaxChunkSize             = 512000
	MaxTags                  = 50
	MaxTagKeyLen             = 128
	MaxTagValueLen           = 256
	MaxTokenLen              = 63
	MaxAssociations          = 8 // per file system
	MaxFailureMessageLen     = 256
	maxNameLen               = 255 // bytes in one path component (NAME_MAX)
)

// forbiddenRune reports the characters FSx's path patterns exclude:
// NUL, CR, LF, U+0085, U+2028, U+2029.
func forbiddenRune(r rune) bool {
	switch r {
	case 0, '\r', '\n', '\u0085', '\u2028', '\u2029':
		return true
	}
	return false
}

func checkChars(field, s string) error {
	if !utf8.ValidString(s) {
		return api.BadRequestf("%s %q is not valid UTF-8: write the path in UTF-8", field, s)
	}
	for _, r := range s {
		if forbiddenRune(r) {
			return api.BadRequestf("%s %q contains the character %U, which is not allowed (NUL, CR, LF, U+0085, U+2028, U+2029): remove it", field, s, r)
		}
	}
	return nil
}

// NormalizeFileSystemPath validates a FileSystemPath and returns its clean
// form: leading "/", no empty components ("//") and no trailing "/" (except
// the root "/"). "." and ".." components are refused rather than resolved,
// so a path never means something other than what was written.
func NormalizeFileSystemPath(p string) (string, error) {
	const field = "FileSystemPath"
	if p == "" {
		return "", api.BadRequestf("%s is required: give the directory in the file system to link, e.g. /ExtData", field)
	}
	if err := checkChars(field, p); err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(p); n > MaxFileSystemPathLen {
		return "", api.BadRequestf("%s is %d characters long; the maximum is %d: use a shorter path", field, n, MaxFileSystemPathLen)
	}
	if p[0] != '/' {
		return "", api.BadRequestf("%s %q must start with \"/\" (it is relative to the file system root): write it as %q", field, p, "/"+p)
	}
	comps, err := components(field, p)
	if err != nil {
		return "", err
	}
	return "/" + strings.Join(comps, "/"), nil
}

// components splits a slash path into its non-empty components, refusing
// "." and "..", and components longer than NAME_MAX.
func components(field, p string) ([]string, error) {
	var out []string
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "":
			continue
		case c == "." || c == "..":
			return nil, api.BadRequestf("%s %q has a %q component: write the path without \".\" and \"..\"", field, p, c)
		case len(c) > maxNameLen:
			return nil, api.BadRequestf("%s %q has a component of %d bytes; the maximum is %d: shorten it", field, p, len(c), maxNameLen)
		}
		out = append(out, c)
	}
	return out, nil
}

// NormalizeDataRepositoryPath validates an s3://bucket/prefix path and
// returns it with a trailing "/" ("s3://bucket/" for a whole bucket).
func NormalizeDataRepositoryPath(p string) (string, error) {
	return normalizeS3Path("DataRepositoryPath", p)
}

func normalizeS3Path(field, p string) (string, error) {
	if p == "" {
		return "", api.BadRequestf("%s is required: give the repository as s3://bucket/prefix/", field)
	}
	if err := checkChars(field, p); err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(p); n > MaxDataRepositoryPathLen {
		return "", api.BadRequestf("%s is %d characters long; the maximum is %d: use a shorter prefix", field, n, MaxDataRepositoryPathLen)
	}
	if strings.HasPrefix(p, "nfs://") {
		return "", api.BadRequestf("%s %q: ferry links S3-compatible repositories only: write it as s3://bucket/prefix/", field, p)
	}
	u, err := s3x.ParseURL(p)
	if err != nil {
		return "", api.BadRequestf("%s: %v", field, err)
	}
	b := u.Bucket
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) || strings.Contains(b, "..") {
		return "", api.BadRequestf("%s %q: bucket name %q must start and end with a letter or digit and have no \"..\": check the bucket name", field, p, b)
	}
	comps, err := components(field, u.Key)
	if err != nil {
		return "", err
	}
	if strings.Contains(strings.TrimSuffix(u.Key, "/"), "//") {
		return "", api.BadRequestf("%s %q has an empty component (\"//\"): S3 keys under it would not map to file names; remove the extra \"/\"", field, p)
	}
	if len(comps) == 0 {
		return "s3://" + b + "/", nil
	}
	return "s3://" + b + "/" + strings.Join(comps, "/") + "/", nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ValidateChunkSize checks ImportedFileChunkSize (MiB).
func ValidateChunkSize(n int32) error {
	if n < MinChunkSize || n > MaxChunkSize {
		return api.BadRequestf("ImportedFileChunkSize %d is out of range: give a size in MiB from %d to %d (default %d)", n, MinChunkSize, MaxChunkSize, api.DefaultImportChunkSize)
	}
	return nil
}

// NormalizeEvents validates a policy's events (a subset of NEW, CHANGED,
// DELETED, no duplicates) and returns them in the canonical order.
func NormalizeEvents(field string, evs []api.EventType) ([]api.EventType, error) {
	seen := map[api.EventType]bool{}
	for _, e := range evs {
		if !slices.Contains(api.EventTypes, e) {
			return nil, api.BadRequestf("%s has the event %q: use NEW, CHANGED and/or DELETED", field, e)
		}
		if seen[e] {
			return nil, api.BadRequestf("%s lists %s twice: list each event once", field, e)
		}
		seen[e] = true
	}
	out := make([]api.EventType, 0, len(evs))
	for _, e := range api.EventTypes {
		if seen[e] {
			out = append(out, e)
		}
	}
	return out, nil
}

// NormalizeS3 validates the S3 member and returns its canonical form: events
// in canonical order, a policy with no events dropped (absent and empty both
// mean "off"), nil when neither policy is left.
func NormalizeS3(s *api.S3DataRepositoryConfiguration) (*api.S3DataRepositoryConfiguration, error) {
	if s == nil {
		return nil, nil
	}
	out := &api.S3DataRepositoryConfiguration{}
	if s.AutoImportPolicy != nil {
		evs, err := NormalizeEvents("S3.AutoImportPolicy.Events", s.AutoImportPolicy.Events)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			out.AutoImportPolicy = &api.AutoImportPolicy{Events: evs}
		}
	}
	if s.AutoExportPolicy != nil {
		evs, err := NormalizeEvents("S3.AutoExportPolicy.Events", s.AutoExportPolicy.Events)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			out.AutoExportPolicy = &api.AutoExportPolicy{Events: evs}
		}
	}
	if out.AutoImportPolicy == nil && out.AutoExportPolicy == nil {
		return nil, nil
	}
	return out, nil
}

var tagText = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`) // FSx TagKey/TagValue pattern

// ValidateTags checks Tags: 1–50 when given, keys 1–128 and values 0–256
// characters of letters, digits, spaces and _.:/=+-@, no duplicate keys, no
// key starting with the reserved "aws:".
func ValidateTags(tags []api.Tag) error {
	if tags == nil {
		return nil
	}
	if len(tags) == 0 {
		return api.BadRequestf("Tags is empty: give 1 to %d tags, or leave Tags out", MaxTags)
	}
	if len(tags) > MaxTags {
		return api.BadRequestf("Tags has %d tags; the maximum is %d: drop some", len(tags), MaxTags)
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if n := utf8.RuneCountInString(t.Key); n < 1 || n > MaxTagKeyLen {
			return api.BadRequestf("tag key %q is %d characters long: keys are 1 to %d characters", t.Key, n, MaxTagKeyLen)
		}
		if n := utf8.RuneCountInString(t.Value); n > MaxTagValueLen {
			return api.BadRequestf("tag %q has a value of %d characters: values are at most %d characters", t.Key, n, MaxTagValueLen)
		}
		if !utf8.ValidString(t.Key) || !tagText.MatchString(t.Key) {
			return api.BadRequestf("tag key %q has a character tags cannot hold: use letters, digits, spaces and _ . : / = + - @", t.Key)
		}
		if !utf8.ValidString(t.Value) || !tagText.MatchString(t.Value) {
			return api.BadRequestf("tag %q has a value %q with a character tags cannot hold: use letters, digits, spaces and _ . : / = + - @", t.Key, t.Value)
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return api.BadRequestf("tag key %q starts with the reserved prefix \"aws:\": choose another key", t.Key)
		}
		if seen[t.Key] {
			return api.BadRequestf("tag key %q appears twice: give each key once", t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

// ValidateToken checks a ClientRequestToken (empty = none): 1–63 characters
// of A-Z a-z 0-9 _ . -.
func ValidateToken(tok string) error {
	if tok == "" {
		return nil
	}
	if len(tok) > MaxTokenLen {
		return api.BadRequestf("ClientRequestToken is %d characters long; the maximum is %d: use a shorter token", len(tok), MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return api.BadRequestf("ClientRequestToken %q has the character %q: use only letters, digits, '_', '.' and '-'", tok, rune(c))
		}
	}
	return nil
}

// NormalizeFailureMessage cuts a failure message to FSx's 256 characters
// and makes it one line, so FailureDetails.Message is always valid.
func NormalizeFailureMessage(msg string) string {
	msg = strings.Map(func(r rune) rune {
		if forbiddenRune(r) || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(msg, "\uFFFD"))
	if utf8.RuneCountInString(msg) <= MaxFailureMessageLen {
		return msg
	}
	r := []rune(msg)
	return string(r[:MaxFailureMessageLen-1]) + "…"
}

// NormalizeCreate validates a CreateDataRepositoryAssociation request and
// returns its canonical form: defaults applied (BatchImportMetaDataOnCreate
// false, ImportedFileChunkSize 1024), FileSystemPath cleaned,
// DataRepositoryPath with its trailing "/", S3 in canonical form. The
// canonical form is what is stored and what idempotency compares.
func NormalizeCreate(req api.CreateDataRepositoryAssociationRequest) (api.CreateDataRepositoryAssociationRequest, error) {
	var err error
	if err = ValidateFileSystemID(req.FileSystemId); err != nil {
		return req, err
	}
	if req.FileSystemPath, err = NormalizeFileSystemPath(req.FileSystemPath); err != nil {
		return req, err
	}
	if req.DataRepositoryPath, err = NormalizeDataRepositoryPath(req.DataRepositoryPath); err != nil {
		return req, err
	}
	if req.BatchImportMetaDataOnCreate == nil {
		f := false
		req.BatchImportMetaDataOnCreate = &f
	}
	if req.ImportedFileChunkSize == nil {
		n := api.DefaultImportChunkSize
		req.ImportedFileChunkSize = &n
	} else if err = ValidateChunkSize(*req.ImportedFileChunkSize); err != nil {
		return req, err
	}
	if req.S3, err = NormalizeS3(req.S3); err != nil {
		return req, err
	}
	if err = ValidateTags(req.Tags); err != nil {
		return req, err
	}
	if err = ValidateToken(req.ClientRequestToken); err != nil {
		return req, err
	}
	return req, nil
}

// NewAssociation builds the association a normalized create request makes,
// in CREATING.
func NewAssociation(req api.CreateDataRepositoryAssociationRequest, id string, now api.Time) api.DataRepositoryAssociation {
	a := api.DataRepositoryAssociation{
		AssociationId:      id,
		ResourceARN:        api.AssociationARN(req.FileSystemId, id),
		FileSystemId:       req.FileSystemId,
		Lifecycle:          api.LifecycleCreating,
		FileSystemPath:     req.FileSystemPath,
		DataRepositoryPath: req.DataRepositoryPath,
		S3:                 req.S3,
		Tags:               slices.Clone(req.Tags),
		CreationTime:       now,
	}
	if req.BatchImportMetaDataOnCreate != nil {
		a.BatchImportMetaDataOnCreate = *req.BatchImportMetaDataOnCreate
	}
	a.ImportedFileChunkSize = api.DefaultImportChunkSize
	if req.ImportedFileChunkSize != nil {
		a.ImportedFileChunkSize = *req.ImportedFileChunkSize
	}
	return a
}

func pathUnder(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// CheckCreate applies the rules against the file system's existing
// associations (every state counts: a DELETING or FAILED association holds
// its paths until it is gone): at most 8 (ServiceLimitExceeded); "/" only as
// the first and then sole association; no FileSystemPath inside or above
// another; no DataRepositoryPath inside or above another in the same bucket.
// req must be normalized. Associations of other file systems are ignored.
func CheckCreate(existing []api.DataRepositoryAssociation, req api.CreateDataRepositoryAssociationRequest) error {
	var mine []api.DataRepositoryAssociation
	for _, a := range existing {
		if a.FileSystemId == req.FileSystemId {
			mine = append(mine, a)
		}
	}
	if len(mine) >= MaxAssociations {
		return &api.APIError{Code: api.CodeServiceLimitExceeded, Limit: api.LimitAssociationsPerFileSystem,
			Message: fmt.Sprintf("file system %s already has %d data repository associations, the maximum: delete one (delete-data-repository-association) before creating another", req.FileSystemId, len(mine))}
	}
	for _, a := range mine {
		switch {
		case req.FileSystemPath == "/":
			return api.BadRequestf("FileSystemPath \"/\" links the whole file system, so it must be its only association, but %s already links %s: delete it first, or choose a subdirectory", a.AssociationId, a.FileSystemPath)
		case a.FileSystemPath == "/":
			return api.BadRequestf("FileSystemPath %q overlaps association %s, which links the whole file system (\"/\"): delete %s first", req.FileSystemPath, a.AssociationId, a.AssociationId)
		case pathUnder(req.FileSystemPath, a.FileSystemPath) || pathUnder(a.FileSystemPath, req.FileSystemPath):
			return api.BadRequestf("FileSystemPath %q overlaps %q of association %s: associations may not be nested or equal; choose a path beside it", req.FileSystemPath, a.FileSystemPath, a.AssociationId)
		case strings.HasPrefix(req.DataRepositoryPath, a.DataRepositoryPath) || strings.HasPrefix(a.DataRepositoryPath, req.DataRepositoryPath):
			return api.BadRequestf("DataRepositoryPath %q overlaps %q of association %s: repository prefixes may not be nested or equal; choose another prefix", req.DataRepositoryPath, a.DataRepositoryPath, a.AssociationId)
		}
	}
	return nil
}

// ApplyUpdate validates an UpdateDataRepositoryAssociation request against
// the current association and returns the updated association (still in its
// current lifecycle: the caller moves it through UPDATING). Only
// ImportedFileChunkSize and S3 may change; a given S3 replaces the whole S3
// member (a policy left out is turned off). Paths are immutable: the request
// has no members for them, and api.DecodeRequest refuses them by name.
func ApplyUpdate(cur api.DataRepositoryAssociation, req api.UpdateDataRepositoryAssociationRequest) (api.DataRepositoryAssociation, error) {
	if err := ValidateAssociationID(req.AssociationId); err != nil {
		return cur, err
	}
	if req.AssociationId != cur.AssociationId {
		return cur, api.BadRequestf("AssociationId %s does not match the association %s being updated", req.AssociationId, cur.AssociationId)
	}
	if err := ValidateToken(req.ClientRequestToken); err != nil {
		return cur, err
	}
	if req.ImportedFileChunkSize == nil && req.S3 == nil {
		return cur, api.BadRequestf("nothing to update: give ImportedFileChunkSize and/or S3 (the paths of an association cannot change)")
	}
	if err := CanUpdate(cur); err != nil {
		return cur, err
	}
	next := cur
	if req.ImportedFileChunkSize != nil {
		if err := ValidateChunkSize(*req.ImportedFileChunkSize); err != nil {
			return cur, err
		}
		next.ImportedFileChunkSize = *req.ImportedFileChunkSize
	}
	if req.S3 != nil {
		s3, err := NormalizeS3(req.S3)
		if err != nil {
			return cur, err
		}
		next.S3 = s3
	}
	return next, nil
}
