// Package events owns the intake of S3 event notifications: it decodes
// what MinIO's webhook target, Ceph RGW's HTTP push, Amazon S3 (bare, in an
// SNS HTTP(S) notification, or through EventBridge) send when an object
// changes, into import hints — "key K of bucket B may have changed" — and
// queues them durably in the catalog (catalog.ImportHints) before it
// answers the sender. SQSPoller reads the same payloads from an SQS queue
// and deletes a message only once its hints are queued.
//
// Applying hints to the namespace is not done here: the importer claims
// them and checks each object with HEAD or LIST, so a hint is never
// trusted — duplicates, reordering and stale events cost a check, and a
// forged event costs no more than that.
//
// The rules (docs/architecture.md, "Auto-import: event intake"):
//   - a key is decoded exactly once, as its sender encoded it (Decode);
//   - a 200 means the hints are committed with synchronous=FULL: an event
//     the sender was told was received is not lost by a crash (Intake);
//   - hostile input gets 400 or 413 and a counter, never a crash, and at
//     most MaxInFlight requests of at most MaxBody bytes are held (503 with
//     Retry-After beyond), so a flood cannot exhaust memory.
package events
