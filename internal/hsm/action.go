package hsm

import (
	"math"
	"strconv"
)

// Action is the HSM action in progress on a file (enum hsm_user_action).
type Action uint8

const (
	ActionNone    Action = iota // NOOP: nothing in progress
	ActionArchive               // export to the repository
	ActionRestore               // fetch data from the repository
	ActionRelease               // drop local data
	ActionRemove                // remove the copy from the repository
	ActionCancel                // cancel a request
)

// String returns the name lfs hsm_action prints.
func (a Action) String() string {
	switch a {
	case ActionNone:
		return "NOOP"
	case ActionArchive:
		return "ARCHIVE"
	case ActionRestore:
		return "RESTORE"
	case ActionRelease:
		return "RELEASE"
	case ActionRemove:
		return "REMOVE"
	case ActionCancel:
		return "CANCEL"
	}
	return "UNKNOWN"
}

// Progress is the state of an action in progress (enum hsm_progress_states).
type Progress uint8

const (
	ProgressNone    Progress = iota
	ProgressWaiting          // queued
	ProgressRunning          // being worked on
	ProgressDone             // finished
)

// String returns the name lfs hsm_action prints.
func (p Progress) String() string {
	switch p {
	case ProgressWaiting:
		return "waiting"
	case ProgressRunning:
		return "running"
	case ProgressDone:
		return "done"
	}
	return "unknown"
}

// EOF is Lustre's LUSTRE_EOF: an extent reaching it covers the file's end.
const EOF uint64 = math.MaxUint64

// CurrentAction is what `ferry hsm action` shows for a file, with the meaning
// lfs gives struct hsm_current_action.
type CurrentAction struct {
	Action Action
	State  Progress
	// Offset and Length: for a running archive or restore, Length is the
	// number of bytes moved so far; otherwise they are the extent the
	// request covers, Length EOF-Offset (or all ones) meaning "to the end".
	Offset, Length uint64
}

// Noop is a file without an action in progress.
var Noop = CurrentAction{Action: ActionNone}

// Waiting is a queued whole-file action.
func Waiting(a Action) CurrentAction {
	return CurrentAction{Action: a, State: ProgressWaiting, Offset: 0, Length: EOF}
}

// Running is a whole-file action in progress that has moved so many bytes.
func Running(a Action, moved uint64) CurrentAction {
	return CurrentAction{Action: a, State: ProgressRunning, Length: moved}
}

// FormatAction returns the line `lfs hsm_action PATH` prints (without the
// newline), e.g. "F: NOOP", "F: RESTORE running (1048576 bytes moved)",
// "F: ARCHIVE waiting (from 0 to EOF)". Like lfs, the end of the extent is
// computed as Offset+Length in wrapping 64-bit arithmetic.
func FormatAction(path string, c CurrentAction) string {
	s := path + ": " + c.Action.String()
	if c.Action == ActionNone {
		return s
	}
	s += " " + c.State.String() + " "
	end := c.Offset + c.Length // wraps, as in lfs
	switch {
	case c.State == ProgressRunning && (c.Action == ActionArchive || c.Action == ActionRestore):
		return s + "(" + strconv.FormatUint(c.Length, 10) + " bytes moved)"
	case end == EOF:
		return s + "(from " + strconv.FormatUint(c.Offset, 10) + " to EOF)"
	default:
		return s + "(from " + strconv.FormatUint(c.Offset, 10) + " to " + strconv.FormatUint(end, 10) + ")"
	}
}
