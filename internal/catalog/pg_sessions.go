package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sessions on PostgreSQL (sessions.go).

func (c *pgCatalog) RegisterSession(ctx context.Context, s Session, ttl time.Duration) error {
	if err := checkSession(s, ttl); err != nil {
		return err
	}
	now := c.opts.now()
	if s.Started.IsZero() {
		s.Started = now
	}
	err := c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sessions VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (node_id) DO UPDATE SET
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

func (c *pgCatalog) HeartbeatSession(ctx context.Context, nodeID string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	now := c.opts.now()
	found := false
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sessions SET heartbeat_ns = $1, expires_ns = $2 WHERE node_id = $3 AND expires_ns > $1`,
			now.UnixNano(), now.Add(ttl).UnixNano(), nodeID)
		found = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: heartbeat of session %q: %w", nodeID, err)
	}
	if !found {
		return fmt.Errorf("session %q expired or ended: register it again: %w", nodeID, ErrNotFound)
	}
	return nil
}

func (c *pgCatalog) EndSession(ctx context.Context, nodeID string) error {
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE node_id = $1`, nodeID); err != nil {
			return err
		}
		return c.releaseSessionClaims(ctx, tx, []string{nodeID})
	})
	if err != nil {
		return fmt.Errorf("catalog: end session %q: %w", nodeID, err)
	}
	return nil
}

// releaseSessionClaims makes what nodes hold claimed ready at once, as
// ReleaseClaims and ReleaseHints do (inside the caller's transaction).
func (c *pgCatalog) releaseSessionClaims(ctx context.Context, tx pgx.Tx, nodes []string) error {
	if _, err := tx.Exec(ctx, `UPDATE journal SET owner = NULL, ready_ns = 0 WHERE owner = ANY($1)`, nodes); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE import_hints SET owner = NULL, ready_ns = $1 WHERE owner = ANY($2)`, max(c.opts.now().UnixNano(), 1), nodes)
	return err
}

func (c *pgCatalog) LiveSessions(ctx context.Context) ([]Session, error) {
	rows, err := c.query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE expires_ns > $1 ORDER BY node_id`, c.opts.now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("catalog: sessions: %w", err)
	}
	return pgSessions(rows)
}

func pgSessions(rows pgx.Rows) ([]Session, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) { return scanSession(r) })
	if err != nil {
		return nil, fmt.Errorf("catalog: sessions: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (c *pgCatalog) ExpireSessions(ctx context.Context) ([]Session, error) {
	var out []Session
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM sessions WHERE expires_ns <= $1 RETURNING `+sessionCols, c.opts.now().UnixNano())
		if err != nil {
			return err
		}
		if out, err = pgSessions(rows); err != nil || len(out) == 0 {
			return err
		}
		nodes := make([]string, len(out))
		for i, s := range out {
			nodes[i] = s.NodeID
		}
		return c.releaseSessionClaims(ctx, tx, nodes)
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: expire sessions: %w", err)
	}
	slices.SortFunc(out, func(a, b Session) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out, nil
}
