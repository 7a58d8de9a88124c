package catalog

import (
	"context"
	"fmt"
	"time"
)

// Sessions are the daemons (nodes) serving one file system from one
// catalog. Each daemon registers a session when it starts, heartbeats it
// well within its TTL, and ends it when it stops. A session not heartbeated
// for longer than its TTL is expired: it no longer counts as live, and
// ExpireSessions (which every node runs with its heartbeat) removes it and
// makes the journal entries and import hints claimed under its NodeID
// ready at once. Claims also end on their own when their lease runs out
// (Claim takes entries whose lease has expired), so a node killed with -9
// loses its work to the others within min(session TTL, lease) plus one
// heartbeat period, whichever engine holds the catalog.
type Sessions interface {
	// RegisterSession records s as live until now+ttl, replacing a
	// session of the same NodeID (the daemon restarted on that node).
	// Heartbeat and Expires are set from the catalog's clock; Started is
	// kept as given (now when zero).
	RegisterSession(ctx context.Context, s Session, ttl time.Duration) error
	// HeartbeatSession pushes the session's expiry to now+ttl. A session
	// that is gone or already expired is ErrNotFound: others may have
	// taken its claims, and the daemon registers again.
	HeartbeatSession(ctx context.Context, nodeID string, ttl time.Duration) error
	// EndSession removes the session and releases its claims (a clean
	// stop); ending a session that is gone is not an error.
	EndSession(ctx context.Context, nodeID string) error
	// LiveSessions lists the sessions not expired, by NodeID.
	LiveSessions(ctx context.Context) ([]Session, error)
	// ExpireSessions removes the expired sessions, releases their claims
	// (journal and import hints owned by their NodeID become ready at
	// once) and returns them, by NodeID. Idempotent; any node may run it.
	ExpireSessions(ctx context.Context) ([]Session, error)
}

// Session is one daemon serving the file system.
type Session struct {
	NodeID     string // the daemon's claim owner name: unique among nodes
	Host       string
	MountPoint string
	PID        int
	Version    string
	Started    time.Time
	Heartbeat  time.Time // the latest register or heartbeat
	Expires    time.Time // Heartbeat + TTL
}

func checkSession(s Session, ttl time.Duration) error {
	if s.NodeID == "" {
		return fmt.Errorf("catalog: a session needs a node id")
	}
	if len(s.NodeID) > 256 || len(s.Host) > 256 || len(s.MountPoint) > 4096 || len(s.Version) > 256 {
		return fmt.Errorf("catalog: session %q: node id, host or version over 256 bytes, or mount point over 4096", s.NodeID)
	}
	return checkTTL(ttl)
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("catalog: a session TTL must be positive (got %v)", ttl)
	}
	return nil
}

const sessionCols = `node_id, host, mount_point, pid, version, started_ns, heartbeat_ns, expires_ns`

func scanSession(sc interface{ Scan(...any) error }) (Session, error) {
	var s Session
	var started, hb, exp int64
	err := sc.Scan(&s.NodeID, &s.Host, &s.MountPoint, &s.PID, &s.Version, &started, &hb, &exp)
	s.Started, s.Heartbeat, s.Expires = fromNS(started), fromNS(hb), fromNS(exp)
	return s, err
}
