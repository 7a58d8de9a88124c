// Package dra owns the rules of data repository associations and of the
// requests about them and about tasks: validation of create and update
// requests (docs/semantics.md §1, §5), the overlap and limit rules against a
// file system's existing associations, ClientRequestToken idempotency, id
// generation, the lifecycle state machines, and describe filtering and
// pagination. Everything here is a pure function over internal/api values;
// the catalog stores, the daemon acts.
//
// Every refusal is an *api.APIError whose message names the field and the fix.
package dra
