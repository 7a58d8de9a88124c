package dra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/ferry-hpc/ferry/internal/api"
)

// ClientRequestToken idempotency (docs/semantics.md §1): the same token with
// the same parameters returns the same result (the resource the first request
// made, as it is now); the same token with other parameters is
// IncompatibleParameterError. Tokens are scoped by operation within one file
// system's catalog (FSx scopes them by account; a ferry catalog is one file
// system). Parameters are compared by Fingerprint of the canonical request:
// after NormalizeCreate (defaults, trailing "/", event order), with tags
// sorted by key and the token itself left out.

// TokenRecord is what the catalog keeps per (Operation, Token).
type TokenRecord struct {
	Operation   string // e.g. "CreateDataRepositoryAssociation"
	Token       string
	Fingerprint string // Fingerprint of the canonical parameters
	ResourceID  string // the association or task the first request made
}

// TokenStore is implemented by the catalog. SaveToken must be atomic: when
// (Operation, Token) already has a record it stores nothing and returns that
// record with saved=false. The catalog should save the token in the same
// transaction that inserts the resource, so a crash cannot keep one
// without the other.
type TokenStore interface {
	LookupToken(ctx context.Context, operation, token string) (rec TokenRecord, ok bool, err error)
	SaveToken(ctx context.Context, rec TokenRecord) (existing TokenRecord, saved bool, err error)
}

// Fingerprint hashes v's canonical JSON. v should already be normalized.
func Fingerprint(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("dra: fingerprint of unmarshalable value: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sortedTags(tags []api.Tag) []api.Tag {
	t := slices.Clone(tags)
	slices.SortFunc(t, func(a, b api.Tag) int { return strings.Compare(a.Key, b.Key) })
	return t
}

// CreateFingerprint is the fingerprint of a normalized create request.
func CreateFingerprint(req api.CreateDataRepositoryAssociationRequest) string {
	req.ClientRequestToken = ""
	req.Tags = sortedTags(req.Tags)
	return Fingerprint(req)
}

// UpdateFingerprint is the fingerprint of an update request, with its S3
// member in canonical form (it must be valid).
func UpdateFingerprint(req api.UpdateDataRepositoryAssociationRequest) string {
	req.ClientRequestToken = ""
	if s, err := NormalizeS3(req.S3); err == nil && req.S3 != nil {
		if s == nil {
			s = &api.S3DataRepositoryConfiguration{}
		}
		req.S3 = s
	}
	return Fingerprint(req)
}

// DeleteFingerprint is the fingerprint of a delete request
// (DeleteDataInFileSystem defaults to false).
func DeleteFingerprint(req api.DeleteDataRepositoryAssociationRequest) string {
	del := req.DeleteDataInFileSystem != nil && *req.DeleteDataInFileSystem
	return Fingerprint(struct {
		ID  string
		Del bool
	}{req.AssociationId, del})
}

// TaskFingerprint is the fingerprint of a normalized task create request.
func TaskFingerprint(req api.CreateDataRepositoryTaskRequest) string {
	req.ClientRequestToken = ""
	req.Tags = sortedTags(req.Tags)
	return Fingerprint(req)
}

func incompatible(operation, token, resourceID string) error {
	return &api.APIError{Code: api.CodeIncompatibleParameterError, Parameter: "ClientRequestToken",
		Message: "ClientRequestToken " + token + " was already used by a " + operation +
			" request with different parameters (it applies to " + resourceID +
			"): repeat the original parameters, or use a new token"}
}

// CheckToken looks the token up before the operation runs. It returns the
// resource of an earlier identical request (replay=true: answer with that
// resource as it is now and do nothing else), nothing for a new token, or
// IncompatibleParameterError. An empty token always means a new request.
func CheckToken(ctx context.Context, s TokenStore, operation, token, fingerprint string) (resourceID string, replay bool, err error) {
	if token == "" {
		return "", false, nil
	}
	rec, ok, err := s.LookupToken(ctx, operation, token)
	if err != nil || !ok {
		return "", false, err
	}
	if rec.Fingerprint != fingerprint {
		return "", false, incompatible(operation, token, rec.ResourceID)
	}
	return rec.ResourceID, true, nil
}

// SaveToken records the token for a resource just made. When a concurrent
// request with the same token won the race, it returns that request's
// resource (replay=true, the caller must discard its own) or
// IncompatibleParameterError.
func SaveToken(ctx context.Context, s TokenStore, rec TokenRecord) (resourceID string, replay bool, err error) {
	if rec.Token == "" {
		return rec.ResourceID, false, nil
	}
	prev, saved, err := s.SaveToken(ctx, rec)
	if err != nil {
		return "", false, err
	}
	if saved {
		return rec.ResourceID, false, nil
	}
	if prev.Fingerprint != rec.Fingerprint {
		return "", false, incompatible(rec.Operation, rec.Token, prev.ResourceID)
	}
	return prev.ResourceID, true, nil
}

// MemTokenStore is an in-memory TokenStore: the reference for the catalog's
// engines and a stand-in in tests.
type MemTokenStore struct {
	mu sync.Mutex
	m  map[[2]string]TokenRecord
}

func (s *MemTokenStore) LookupToken(_ context.Context, operation, token string) (TokenRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[[2]string{operation, token}]
	return r, ok, nil
}

func (s *MemTokenStore) SaveToken(_ context.Context, rec TokenRecord) (TokenRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{rec.Operation, rec.Token}
	if r, ok := s.m[k]; ok {
		return r, false, nil
	}
	if s.m == nil {
		s.m = map[[2]string]TokenRecord{}
	}
	s.m[k] = rec
	return rec, true, nil
}
