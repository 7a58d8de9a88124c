package dra

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/ferry-hpc/ferry/internal/api"
)

// Ids are a prefix and 17 lower-case hex digits from crypto/rand (68 bits),
// the length FSx uses today; ids of other lengths are accepted where the
// FSx model allows them.

func newID(prefix string) string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24 aborts instead)
	return prefix + hex.EncodeToString(b[:])[:17]
}

// NewAssociationID returns "dra-" and 17 hex digits.
func NewAssociationID() string { return newID("dra-") }

// NewTaskID returns "task-" and 17 hex digits.
func NewTaskID() string { return newID("task-") }

// NewFileSystemID returns "fs-" and 17 hex digits.
func NewFileSystemID() string { return newID("fs-") }

func validID(s, prefix string, minHex, maxLen int) bool {
	h, ok := strings.CutPrefix(s, prefix)
	if !ok || len(h) < minHex || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidateFileSystemID checks "fs-" and 8 to 18 hex digits (FSx: ^fs-[0-9a-f]{8,}$, ≤21).
func ValidateFileSystemID(id string) error {
	if id == "" {
		return api.BadRequestf("FileSystemId is required: give the id describe-file-systems shows, e.g. fs-0123456789abcdef0")
	}
	if !validID(id, "fs-", 8, 21) {
		return api.BadRequestf("FileSystemId %q is not a file system id: it is fs- and 8 to 18 lower-case hex digits (describe-file-systems lists them)", id)
	}
	return nil
}

// ValidateAssociationID checks "dra-" and 8 to 19 hex digits (FSx: ≤23).
func ValidateAssociationID(id string) error {
	if id == "" {
		return api.BadRequestf("AssociationId is required: give the id describe-data-repository-associations shows, e.g. dra-0123456789abcdef0")
	}
	if !validID(id, "dra-", 8, 23) {
		return api.BadRequestf("AssociationId %q is not an association id: it is dra- and 8 to 19 lower-case hex digits", id)
	}
	return nil
}

// ValidateTaskID checks "task-" and at least 17 hex digits (FSx: ≤128).
func ValidateTaskID(id string) error {
	if id == "" {
		return api.BadRequestf("TaskId is required: give the id describe-data-repository-tasks shows, e.g. task-0123456789abcdef0")
	}
	if !validID(id, "task-", 17, 128) {
		return api.BadRequestf("TaskId %q is not a task id: it is task- and at least 17 lower-case hex digits", id)
	}
	return nil
}
