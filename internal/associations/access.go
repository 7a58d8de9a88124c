package associations

import (
	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
)

// normalizeAccess returns the canonical FerryRepositoryAccess of a
// request: nil when no member is set (so `{}` and an absent member are the
// same request to ClientRequestToken), or an error naming the member and
// the fix.
func normalizeAccess(r *api.RepositoryAccess) (*api.RepositoryAccess, error) {
	if r == nil || *r == (api.RepositoryAccess{}) {
		return nil, nil
	}
	if r.RequestPayer != "" && r.RequestPayer != api.RequestPayerRequester {
		return nil, api.BadRequestf("FerryRepositoryAccess.RequestPayer %q is not known: the one value is %q (--request-payer requester)", r.RequestPayer, api.RequestPayerRequester)
	}
	if r.Unsigned && r.RequestPayer != "" {
		return nil, api.BadRequestf("FerryRepositoryAccess: Unsigned (--no-sign-request) and RequestPayer (--request-payer) exclude each other: a requester-pays bucket bills the requester, so its requests must be signed; give one of them")
	}
	c := *r
	return &c, nil
}

// checkUnsignedExport refuses an AutoExportPolicy on an unsigned
// association: S3 accepts no anonymous writes to any bucket a user would
// export to, and an association whose exports can never succeed would
// hold its journal forever. what names the request ("create", "update of
// dra-…").
func checkUnsignedExport(a api.DataRepositoryAssociation, what string) error {
	if !dra.AccessOf(a).Unsigned || a.S3 == nil || a.S3.AutoExportPolicy == nil || len(a.S3.AutoExportPolicy.Events) == 0 {
		return nil
	}
	return api.BadRequestf("%s: an unsigned association (FerryRepositoryAccess.Unsigned, --no-sign-request) cannot export: S3 takes no anonymous writes; drop the AutoExportPolicy from --s3, or link the bucket without --no-sign-request, with credentials that may write to it", what)
}
