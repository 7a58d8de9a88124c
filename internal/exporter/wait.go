package exporter

import (
	"context"
	"fmt"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// WaitResult is what Wait found.
type WaitResult struct {
	// Barrier is the journal sequence number Wait waited for: everything
	// appended at or before it (closed before the call) under the prefix.
	Barrier int64
	// Parked lists entries under the prefix that failed permanently and
	// are not exported (at most WaitListLimit); `hsm wait` reports them
	// as failures rather than waiting for them.
	Parked []catalog.JournalEntry
	// Pending lists what was still pending when ctx ended (at most
	// WaitListLimit), with FirstSeq at or before Barrier.
	Pending []catalog.JournalEntry
}

// WaitListLimit bounds the entries WaitResult lists.
const WaitListLimit = 1000

// Wait is the drain barrier of `ferry hsm wait PATH…` (docs/semantics.md §6):
// it returns once every journal entry under prefix (a catalog path: ""
// for everything, "ExtData/d" for that directory and below) that holds
// content appended before the call is exported — by this exporter or any
// other sharing the catalog. Writes after the call do not extend the wait
// (catalog first_seq). Parked entries do not hold it up; they are returned
// in Parked. When ctx ends first, Wait returns an error and lists what is
// still pending.
func (e *Exporter) Wait(ctx context.Context, prefix string) (WaitResult, error) {
	var r WaitResult
	barrier, err := e.cfg.Catalog.JournalSeq(ctx)
	if err != nil {
		return r, err
	}
	r.Barrier = barrier
	t := time.NewTicker(e.cfg.WaitPoll)
	defer t.Stop()
	for {
		n, err := e.cfg.Catalog.PendingCount(ctx, prefix, barrier)
		if err == nil && n == 0 {
			r.Parked, err = listAll(ctx, prefix, e.cfg.Catalog.ParkedEntries, nil)
			return r, err
		}
		if err != nil && ctx.Err() == nil {
			return r, err
		}
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		r.Pending, _ = listAll(lctx, prefix, e.cfg.Catalog.Pending, func(je catalog.JournalEntry) bool {
			return je.FirstSeq <= barrier && !je.IsParked()
		})
		r.Parked, _ = listAll(lctx, prefix, e.cfg.Catalog.ParkedEntries, nil)
		return r, fmt.Errorf("exports under %q still pending: %d (%w)", prefix, n, ctx.Err())
	}
}

// listAll pages through a journal listing, keeping up to WaitListLimit
// entries that keep accepts (nil: all).
func listAll(ctx context.Context, prefix string, list func(ctx context.Context, prefix, after string, limit int) ([]catalog.JournalEntry, error), keep func(catalog.JournalEntry) bool) ([]catalog.JournalEntry, error) {
	var out []catalog.JournalEntry
	after := ""
	for len(out) < WaitListLimit {
		es, err := list(ctx, prefix, after, 500)
		if err != nil {
			return out, err
		}
		for _, je := range es {
			if keep == nil || keep(je) {
				out = append(out, je)
			}
		}
		if len(es) < 500 {
			break
		}
		after = es[len(es)-1].Path
	}
	return out[:min(len(out), WaitListLimit)], nil
}
