package events

import "sync/atomic"

// SourceStats are the counters of one source since the intake started.
type SourceStats struct {
	// Received: records or events in well-formed payloads.
	Received int64
	// Queued: hints that made a key pending.
	Queued int64
	// Duplicate: hints for a key already pending (collapsed into it,
	// newer or not).
	Duplicate int64
	// Ignored: events about something else (tags, ACLs, restores, reads),
	// s3:TestEvents, SNS unsubscribe confirmations, and keys no
	// association covers.
	Ignored int64
	// Tests: s3:TestEvents (also counted in Ignored).
	Tests int64
	// Malformed: requests refused with 400 or 413; SQS messages that
	// could not be decoded (deleted).
	Malformed int64
}

// Stats are the intake's counters; the daemon publishes them as metrics.
type Stats struct {
	// BySource has an entry for every name in Sources. A payload whose
	// sender cannot be told (bad JSON, an unknown shape, an oversized
	// body) counts under SourceUnknown.
	BySource map[string]SourceStats
	// Unauthorized: requests without the bearer token (401).
	Unauthorized int64
	// Busy: requests refused because MaxInFlight were in flight (503).
	Busy int64
	// QueueFailed: requests whose hints could not be queued (503), and
	// SQS receives whose hints could not be queued (messages kept).
	QueueFailed int64
	// Subscriptions confirmed, whose confirmation failed (503), and
	// refused because AllowSubscribeURL refused the URL (403).
	SubscriptionsConfirmed, SubscriptionsFailed, SubscriptionsRefused int64
	// TooLarge: bodies over MaxBody (413; also Malformed of SourceUnknown).
	TooLarge int64
}

type sourceCounters struct {
	received, queued, duplicate, ignored, tests, malformed atomic.Int64
}

func (in *Intake) counters(source string) *sourceCounters {
	if c, ok := in.stats[source]; ok {
		return c
	}
	return in.stats[SourceUnknown]
}

// Stats returns the counters (each read atomically, not all at one
// instant).
func (in *Intake) Stats() Stats {
	s := Stats{
		BySource:               make(map[string]SourceStats, len(in.stats)),
		Unauthorized:           in.unauth.Load(),
		Busy:                   in.busy.Load(),
		QueueFailed:            in.failed.Load(),
		SubscriptionsConfirmed: in.subOK.Load(),
		SubscriptionsFailed:    in.subFail.Load(),
		SubscriptionsRefused:   in.subDeny.Load(),
		TooLarge:               in.tooBig.Load(),
	}
	for name, c := range in.stats {
		s.BySource[name] = SourceStats{
			Received: c.received.Load(), Queued: c.queued.Load(), Duplicate: c.duplicate.Load(),
			Ignored: c.ignored.Load(), Tests: c.tests.Load(), Malformed: c.malformed.Load(),
		}
	}
	return s
}
