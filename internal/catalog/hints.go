package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ImportHints is the durable queue of import hints: "key Key of bucket
// Bucket may have changed", as bucket event notifications say it
// (internal/events decodes them). A hint is not a change to apply: the
// importer checks the object (HEAD or LIST) and the repository is the
// truth, so a duplicate, reordered or stale hint costs one check and
// nothing else.
//
// The queue holds one pending hint per (bucket, key): a hint for a key
// already pending collapses into it (HintOutcome says how), keeping the
// key's place in the queue (its arrival). Claim, ExtendHintLease,
// CompleteHint and FailHint lease hints to an importer as Claim and
// Complete do with the export journal.
type ImportHints interface {
	// EnqueueHints adds hints in one transaction and returns once it is
	// durable (synchronous=FULL): an event whose hints were enqueued
	// without error can no longer be lost, by a crash of the daemon or
	// of the machine. It returns one outcome per hint, in order. A hint
	// for a pending (bucket, key) replaces the pending one's details
	// only when it is newer (HintNewer); either way the key keeps its
	// place. A newer hint for a claimed key makes CompleteHint of that
	// claim keep the key pending (the check may have missed the change).
	// Hints of one call are applied in order.
	EnqueueHints(ctx context.Context, hints ...ImportHint) ([]HintOutcome, error)
	// ClaimHints leases up to n ready hints to owner until now+lease:
	// first hints never tried, in arrival order, then hints whose retry
	// time or expired lease has come, earliest first. Hints leased to
	// others are skipped.
	ClaimHints(ctx context.Context, owner string, n int, lease time.Duration) ([]QueuedHint, error)
	// ExtendHintLease pushes the lease of hints owner still holds to
	// now+lease and returns how many it still held.
	ExtendHintLease(ctx context.Context, owner string, hints []QueuedHint, lease time.Duration) (int, error)
	// CompleteHint removes h when no newer hint for its key arrived since
	// h was claimed (h.Seq is still the key's latest) and reports
	// removed. Otherwise the hint stays, unleased and ready at once.
	CompleteHint(ctx context.Context, h QueuedHint) (removed bool, err error)
	// FailHint records a failed attempt: the hint is unleased, its
	// Attempts counted, cause kept (cut to 1024 bytes), and it is not
	// claimed again before retryAt.
	FailHint(ctx context.Context, h QueuedHint, cause string, retryAt time.Time) error
	// ReleaseHints makes every hint leased to owner ready at once, and
	// returns how many: an applier starting again under the same owner
	// (the daemon restarted on this node) takes back the claims its
	// previous run died holding, instead of waiting for their leases.
	ReleaseHints(ctx context.Context, owner string) (int64, error)
	// HintDepth is the number of pending hints; it does not scan.
	HintDepth(ctx context.Context) (int64, error)
	// HintOldestAge is how long the oldest pending hint has waited (0
	// when none).
	HintOldestAge(ctx context.Context) (time.Duration, error)
}

// HintKind is what an event said happened to an object.
type HintKind string

const (
	HintCreated HintKind = "CREATED" // written: a new object or a new version of one
	HintRemoved HintKind = "REMOVED" // deleted (or a delete marker, or expired)
)

// ImportHint is one decoded event: key Key of bucket Bucket may have
// changed.
type ImportHint struct {
	// Source names the sender (internal/events: minio, ceph, aws,
	// aws-sns, eventbridge, sqs); kept for counters and logs.
	Source string
	Bucket string
	Key    string // the object key, decoded (never escaped)
	Kind   HintKind
	// EventTime is when the sender says the change happened (zero when
	// it did not say).
	EventTime time.Time
	// Sequencer orders events of one key (hexadecimal, as S3 gives it;
	// "" when absent). Compare it only with a sequencer of the same key
	// (CompareSequencers).
	Sequencer string
	// Size is the object's size, -1 when the event did not say.
	Size int64
	ETag string // "" when the event did not say
}

// HintOutcome is what EnqueueHints did with one hint.
type HintOutcome int

const (
	// HintQueued: the key had no pending hint; it is queued now.
	HintQueued HintOutcome = iota
	// HintReplaced: the key had a pending hint, which now carries this
	// newer one's details (a duplicate of the key, newer).
	HintReplaced
	// HintStale: the key had a pending hint at least as new; nothing
	// changed (a duplicate, or an older event delivered late).
	HintStale
)

func (o HintOutcome) String() string {
	switch o {
	case HintQueued:
		return "queued"
	case HintReplaced:
		return "replaced"
	case HintStale:
		return "stale"
	}
	return fmt.Sprintf("HintOutcome(%d)", int(o))
}

// QueuedHint is a pending hint of the queue.
type QueuedHint struct {
	ImportHint
	// Seq is the sequence number of the latest hint that changed this
	// key's entry; CompleteHint compares it.
	Seq int64
	// FirstSeq is the sequence number of the key's first hint: its place
	// in the queue (arrival order).
	FirstSeq   int64
	EnqueuedAt time.Time // when the key became pending (kept when collapsed)
	UpdatedAt  time.Time // the latest hint that changed the entry
	Attempts   int
	LastError  string
	// ReadyAt: zero when never tried, the lease expiry while claimed, the
	// retry time after a failure.
	ReadyAt time.Time
	Owner   string // the claim's owner, "" when unclaimed
}

// MaxHintKey is the longest key a hint may carry: S3's limit, in bytes.
const MaxHintKey = 1024

// CheckHint says why h cannot be queued (nil when it can). Decoders check
// hints field by field with better messages first; this is the catalog's
// own guard.
func CheckHint(h ImportHint) error {
	switch {
	case h.Bucket == "" || len(h.Bucket) > 255 || strings.ContainsAny(h.Bucket, "/\x00"):
		return fmt.Errorf("catalog: hint bucket %q: want 1 to 255 bytes without '/' or NUL", h.Bucket)
	case h.Key == "" || len(h.Key) > MaxHintKey || !utf8.ValidString(h.Key):
		return fmt.Errorf("catalog: hint key of bucket %s: want 1 to %d bytes of UTF-8 (got %d bytes)", h.Bucket, MaxHintKey, len(h.Key))
	case h.Kind != HintCreated && h.Kind != HintRemoved:
		return fmt.Errorf("catalog: hint kind %q for %s/%s: use CREATED or REMOVED", h.Kind, h.Bucket, h.Key)
	case !ValidSequencer(h.Sequencer):
		return fmt.Errorf("catalog: hint sequencer %q for %s/%s: want at most 64 hexadecimal digits", h.Sequencer, h.Bucket, h.Key)
	case len(h.Source) > 64 || len(h.ETag) > 256:
		return fmt.Errorf("catalog: hint for %s/%s: source (at most 64 bytes) or ETag (at most 256) too long", h.Bucket, h.Key)
	case h.Size < -1:
		return fmt.Errorf("catalog: hint size %d for %s/%s: want -1 (unknown) or more", h.Size, h.Bucket, h.Key)
	}
	return nil
}

// ValidSequencer reports whether s is "" or at most 64 hexadecimal digits.
func ValidSequencer(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// CompareSequencers orders two sequencers of the same key as Amazon S3
// documents it: the shorter is right-padded with zeros, then the two are
// compared lexicographically (case does not matter). It returns -1, 0 or
// +1. Sequencers of different keys are not comparable; neither is an
// empty one (callers check).
func CompareSequencers(a, b string) int {
	n := max(len(a), len(b))
	for i := range n {
		ca, cb := seqDigit(a, i), seqDigit(b, i)
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	return 0
}

func seqDigit(s string, i int) byte {
	if i >= len(s) {
		return '0'
	}
	c := s[i]
	if 'a' <= c && c <= 'f' {
		c -= 'a' - 'A'
	}
	return c
}

// HintNewer reports whether hint h is newer than cur, a pending hint of
// the same key: by sequencer when both have one, else by event time when
// both have one and they differ, else whenever h says something else
// (an event that cannot be ordered is taken as the later arrival). A hint
// equal to cur is not newer.
func HintNewer(h, cur ImportHint) bool {
	if h.Sequencer != "" && cur.Sequencer != "" {
		return CompareSequencers(h.Sequencer, cur.Sequencer) > 0
	}
	if !h.EventTime.IsZero() && !cur.EventTime.IsZero() && !h.EventTime.Equal(cur.EventTime) {
		return h.EventTime.After(cur.EventTime)
	}
	return h.Kind != cur.Kind || h.Sequencer != cur.Sequencer || h.ETag != cur.ETag || h.Size != cur.Size ||
		!h.EventTime.Equal(cur.EventTime)
}
