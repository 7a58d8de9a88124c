package importer

import (
	"slices"
	"sync"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
)

// Conflict kinds (Conflict.Kind).
const (
	ConflictChanged = api.ConflictChanged // the object changed under local changes: a conflict copy keeps them
	ConflictDeleted = api.ConflictDeleted // the object was deleted under local changes: the file stays
)

// MaxRecentConflicts is how many conflicts RecentConflicts keeps (the
// newest; in memory, since this Importer started).
const MaxRecentConflicts = 20

// Conflict is one conflict auto-import (or an import task) met.
type Conflict struct {
	Association string
	Key         string
	Path        string // store path of the file (the repository version is there for CHANGED)
	CopyPath    string // store path of the conflict copy (CHANGED only)
	Kind        string // ConflictChanged or ConflictDeleted
	Time        time.Time
}

// conflictLog keeps the newest MaxRecentConflicts conflicts.
type conflictLog struct {
	mu   sync.Mutex
	ring []Conflict // oldest first
}

func (l *conflictLog) add(c Conflict) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) == MaxRecentConflicts {
		l.ring = slices.Delete(l.ring, 0, 1)
	}
	l.ring = append(l.ring, c)
}

// RecentConflicts returns the newest conflicts met since the Importer
// started (at most MaxRecentConflicts), newest first.
func (im *Importer) RecentConflicts() []Conflict {
	l := &im.conflicts
	l.mu.Lock()
	out := slices.Clone(l.ring)
	l.mu.Unlock()
	slices.Reverse(out)
	return out
}
