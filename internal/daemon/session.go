package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/associations"
	"github.com/ferry-hpc/ferry/internal/catalog"
)

// Nodes and sessions. Every daemon serving a file system is a node: it
// holds a session in the catalog (catalog.Sessions) from just after the
// catalog opens until just before it closes. The session is kept alive by
// a heartbeat every TTL/3 (ferry mount --session-ttl, default 30s); a node
// that stops heartbeating (kill -9, power off, a network cut) expires once
// its TTL runs out, and the next heartbeat of any live node expires it:
// the journal entries and import hints it held claimed are ready at once
// for the live nodes. A clean stop ends the session (and releases its
// claims) at once.
//
// The node id names the session and every claim the daemon makes (the
// exporter's journal claims, the applier's import hints): <fs-id>@<host>:
// <mount point>. It is stable across restarts of the same mount, so a
// restarted daemon takes back what its crashed predecessor held claimed,
// and distinct for several daemons on one host (each has its own mount
// point).

// DefaultSessionTTL is how long a node's session lives without a
// heartbeat (ferry mount --session-ttl).
const DefaultSessionTTL = 30 * time.Second

// MinSessionTTL and MaxSessionTTL bound --session-ttl: the heartbeat runs
// every TTL/3, at least every second and at most every 20 minutes.
const (
	MinSessionTTL = 3 * time.Second
	MaxSessionTTL = time.Hour
)

// CheckSessionTTL refuses a --session-ttl outside MinSessionTTL to
// MaxSessionTTL.
func CheckSessionTTL(ttl time.Duration) error {
	if ttl < MinSessionTTL || ttl > MaxSessionTTL {
		return fmt.Errorf("--session-ttl %v: give a duration from %v to %v, such as 30s (the heartbeat runs every third of it; a node that stops heartbeating loses its claims to the others after it)",
			ttl, MinSessionTTL, MaxSessionTTL)
	}
	return nil
}

// maxNodeID is the catalog's bound on a session's node id.
const maxNodeID = 256

// nodeID is the daemon's node id, <fs-id>@<host>:<mount point>; a mount
// point that would make it longer than the catalog keeps is replaced by
// the first 16 bytes of its SHA-256, in hex (still stable and distinct).
func nodeID(fsID, host, mountPoint string) string {
	id := fsID + "@" + host + ":" + mountPoint
	if len(id) <= maxNodeID {
		return id
	}
	sum := sha256.Sum256([]byte(mountPoint))
	id = fsID + "@" + host + ":sha256:" + hex.EncodeToString(sum[:16])
	if len(id) > maxNodeID { // a host name beyond DNS's 253 bytes
		sum := sha256.Sum256([]byte(host + ":" + mountPoint))
		id = fsID + "@sha256:" + hex.EncodeToString(sum[:16])
	}
	return id
}

// claimOwner names this daemon's claims in the catalog's queues (export
// journal, import hints): its node id, which is also its session's.
func (d *Daemon) claimOwner() string { return d.node }

// session is what the daemon registers.
func (d *Daemon) session() catalog.Session {
	return catalog.Session{
		NodeID: d.node, Host: hostname(), MountPoint: d.cfg.MountPoint, PID: os.Getpid(),
		Version: d.cfg.Version, Started: d.started,
	}
}

// startSession registers the daemon's session and runs its heartbeat. The
// closer stops the heartbeat and ends the session, which releases what
// the daemon still held claimed: it runs after everything that claims has
// stopped, just before the catalog closes.
func (d *Daemon) startSession() error {
	d.started = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := d.cat.RegisterSession(ctx, d.session(), d.cfg.SessionTTL)
	cancel()
	if err != nil {
		return fmt.Errorf("catalog %s: registering node %s: %w", d.catalogName(), d.node, err)
	}
	d.lead(context.Background())
	stop := d.background("session heartbeat", d.heartbeat)
	d.closers.push("session", func() error {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.cat.EndSession(ctx, d.node)
	})
	return nil
}

// catalogName is the catalog's engine for messages (never the DSN, which
// may hold a password).
func (d *Daemon) catalogName() string {
	if strings.HasPrefix(d.cfg.Catalog, "sqlite://") {
		return d.cfg.Catalog
	}
	return strings.SplitN(d.cfg.Catalog, "://", 2)[0]
}

// heartbeat keeps the session alive every TTL/3 and expires the sessions
// of nodes that stopped heartbeating, until ctx ends.
func (d *Daemon) heartbeat(ctx context.Context) error {
	ttl := d.cfg.SessionTTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d.beat(ctx, ttl)
	}
}

// beat is one heartbeat: the session's, then the expiry of others'.
func (d *Daemon) beat(ctx context.Context, ttl time.Duration) {
	cctx, cancel := context.WithTimeout(ctx, ttl/3)
	defer cancel()
	err := d.cat.HeartbeatSession(cctx, d.node, ttl)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		d.log.Warn("this node's session is gone from the catalog (expired: no heartbeat within --session-ttl, or ended by another): other nodes may have taken its claims; registering again",
			"node", d.node, "session_ttl", ttl)
		if err := d.cat.RegisterSession(cctx, d.session(), ttl); err != nil && ctx.Err() == nil {
			d.log.Warn("registering this node's session again", "node", d.node, "err", err)
		}
	case err != nil && ctx.Err() == nil:
		d.log.Warn("session heartbeat failed; the session expires if none succeeds within --session-ttl", "node", d.node, "err", err)
	}
	expired, err := d.cat.ExpireSessions(cctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("expiring the sessions of dead nodes", "err", err)
		}
		return
	}
	for _, s := range expired {
		d.log.Info("node expired (no heartbeat): its claimed export journal entries and import hints are released to the live nodes",
			"node", s.NodeID, "host", s.Host, "mountpoint", s.MountPoint, "pid", s.PID,
			"last_heartbeat", s.Heartbeat.UTC().Format(time.RFC3339), "silent_for", time.Since(s.Heartbeat).Round(time.Second))
	}
	d.lead(cctx)
}

// lead decides from the live sessions whether this node is the leader:
// the live node with the smallest id does the association work (one
// worker per file system; associations.Config.Leader). Every node decides
// from the same catalog, so they agree but for a heartbeat around a
// node's expiry. A failed read keeps the last decision.
func (d *Daemon) lead(ctx context.Context) {
	ss, err := d.cat.LiveSessions(ctx)
	if err != nil {
		return
	}
	leader, peers := true, 0
	for _, s := range ss {
		if s.NodeID != d.node {
			peers++
			if s.NodeID < d.node {
				leader = false
			}
		}
	}
	if was := d.leader.Swap(leader); was != leader {
		d.log.Info("association work", "node", d.node, "leader", leader, "other_nodes", peers)
	}
	d.peers.Store(int32(peers))
}

// settle is how long the leader waits before an association turns
// AVAILABLE (associations.Config.Settle): with other nodes live, one tick
// of their association workers (RecheckInterval/4), when they publish it,
// and a second.
func (d *Daemon) settle() time.Duration {
	// The live nodes as of now, not of the last heartbeat: a node that
	// joined since serves writes already.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	d.lead(ctx)
	cancel()
	if d.peers.Load() == 0 {
		return 0
	}
	r := d.cfg.RecheckInterval
	if r <= 0 {
		r = associations.DefaultRecheckInterval
	}
	return r/4 + time.Second
}

// liveNodes are the live sessions, as describe-file-systems and status show
// them.
func (d *Daemon) liveNodes(ctx context.Context) ([]catalog.Session, error) {
	ss, err := d.cat.LiveSessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: sessions: %w", d.catalogName(), err)
	}
	return ss, nil
}

// ferryNodes is describe-file-systems' FerryNodes.
func (d *Daemon) ferryNodes(ctx context.Context) ([]api.FerryNode, error) {
	ss, err := d.liveNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.FerryNode, 0, len(ss))
	for _, s := range ss {
		out = append(out, api.FerryNode{
			NodeId: s.NodeID, Host: s.Host, MountPoint: s.MountPoint, Pid: s.PID, Version: s.Version,
			Started: api.NewTime(s.Started), LastHeartbeat: api.NewTime(s.Heartbeat),
		})
	}
	return out, nil
}
