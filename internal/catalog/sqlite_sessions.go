package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sessions on SQLite (sessions.go). One daemon per SQLite catalog is the
// usual case, but the table behaves as on PostgreSQL. Registration and
// heartbeats commit relaxed: a lost heartbeat only shortens a session.

func (c *sqliteCatalog) RegisterSession(ctx context.Context, s Session, ttl time.Duration) error {
	if err := checkSession(s, ttl); err != nil {
		return err
	}
	now := c.opts.now()
	if s.Started.IsZero() {
		s.Started = now
	}
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		_, err := c.wexec(ctx, `INSERT INTO sessions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (node_id) DO UPDATE SET
			host = excluded.host, mount_point = excluded.mount_point, pid = excluded.pid, version = excluded.version,
			started_ns = excluded.started_ns, heartbeat_ns = excluded.heartbeat_ns, expires_ns = excluded.expires_ns`,
			s.NodeID, s.Host, s.MountPoint, s.PID, s.Version, s.Started.UnixNano(), now.UnixNano(), now.Add(ttl).UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: register session %q: %w", s.NodeID, err)
	}
	return nil
}

func (c *sqliteCatalog) HeartbeatSession(ctx context.Context, nodeID string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	now := c.opts.now()
	found := false
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `UPDATE sessions SET heartbeat_ns = ?1, expires_ns = ?2 WHERE node_id = ?3 AND expires_ns > ?1`,
			now.UnixNano(), now.Add(ttl).UnixNano(), nodeID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		found = n == 1
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: heartbeat of session %q: %w", nodeID, err)
	}
	if !found {
		return fmt.Errorf("session %q expired or ended: register it again: %w", nodeID, ErrNotFound)
	}
	return nil
}

func (c *sqliteCatalog) EndSession(ctx context.Context, nodeID string) error {
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		if _, err := c.wexec(ctx, `DELETE FROM sessions WHERE node_id = ?`, nodeID); err != nil {
			return err
		}
		return c.releaseSessionClaims(ctx, nodeID)
	})
	if err != nil {
		return fmt.Errorf("catalog: end session %q: %w", nodeID, err)
	}
	return nil
}

// releaseSessionClaims makes what nodeID holds claimed ready at once, as
// ReleaseClaims and ReleaseHints do (inside the caller's transaction).
func (c *sqliteCatalog) releaseSessionClaims(ctx context.Context, nodeID string) error {
	if _, err := c.wexec(ctx, `UPDATE journal SET owner = NULL, ready_ns = 0 WHERE owner = ?`, nodeID); err != nil {
		return err
	}
	_, err := c.wexec(ctx, `UPDATE import_hints SET owner = NULL, ready_ns = ? WHERE owner = ?`, max(c.opts.now().UnixNano(), 1), nodeID)
	return err
}

func (c *sqliteCatalog) LiveSessions(ctx context.Context) ([]Session, error) {
	rows, err := c.rquery(ctx, `SELECT `+sessionCols+` FROM sessions WHERE expires_ns > ? ORDER BY node_id`, c.opts.now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("catalog: sessions: %w", err)
	}
	return scanSessions(rows)
}

func scanSessions(rows *sql.Rows) ([]Session, error) {
	defer rows.Close()
	var out []Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: sessions: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (c *sqliteCatalog) ExpireSessions(ctx context.Context) ([]Session, error) {
	var out []Session
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		rows, err := c.wc.QueryContext(ctx, `DELETE FROM sessions WHERE expires_ns <= ? RETURNING `+sessionCols, c.opts.now().UnixNano())
		if err != nil {
			return err
		}
		if out, err = scanSessions(rows); err != nil {
			return err
		}
		for _, s := range out {
			if err := c.releaseSessionClaims(ctx, s.NodeID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: expire sessions: %w", err)
	}
	slices.SortFunc(out, func(a, b Session) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out, nil
}
