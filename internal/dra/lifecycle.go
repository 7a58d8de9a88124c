package dra

import (
	"fmt"

	"github.com/ferry-hpc/ferry/internal/api"
)

// Association lifecycle (docs/semantics.md §1):
//
//	CREATING ──► AVAILABLE | MISCONFIGURED | FAILED | DELETING
//	AVAILABLE ◄──► MISCONFIGURED
//	AVAILABLE | MISCONFIGURED ──► UPDATING ──► AVAILABLE | MISCONFIGURED
//	AVAILABLE | MISCONFIGURED | FAILED ──► DELETING
//	FAILED: terminal except for deletion; DELETING: terminal (the row goes).
//
// Decisions: an update may start from MISCONFIGURED (an update is how a user
// fixes a policy, and it re-checks the repository at once); a CREATING
// association may be deleted (a create stuck on an unreachable repository
// must not hold its paths forever); a FAILED one may be deleted (the only
// way to free its paths). Staying in the same state is always allowed (a
// MISCONFIGURED association may get a new FailureDetails).
var draMoves = map[api.DataRepositoryLifecycle][]api.DataRepositoryLifecycle{
	api.LifecycleCreating:      {api.LifecycleAvailable, api.LifecycleMisconfigured, api.LifecycleFailed, api.LifecycleDeleting},
	api.LifecycleAvailable:     {api.LifecycleMisconfigured, api.LifecycleUpdating, api.LifecycleDeleting},
	api.LifecycleMisconfigured: {api.LifecycleAvailable, api.LifecycleUpdating, api.LifecycleDeleting},
	api.LifecycleUpdating:      {api.LifecycleAvailable, api.LifecycleMisconfigured},
	api.LifecycleFailed:        {api.LifecycleDeleting},
	api.LifecycleDeleting:      nil,
}

// TransitionError is an illegal lifecycle move. It is a bug in the caller
// (or a race it must re-check), never a user error, so it is not an APIError.
type TransitionError struct {
	Kind     string // "association" or "task"
	From, To string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s lifecycle cannot move from %s to %s", e.Kind, e.From, e.To)
}

// Transition checks an association lifecycle move.
func Transition(from, to api.DataRepositoryLifecycle) error {
	next, known := draMoves[from]
	if _, ok := draMoves[to]; !known || !ok {
		return &TransitionError{"association", string(from), string(to)}
	}
	if from == to {
		return nil
	}
	for _, n := range next {
		if n == to {
			return nil
		}
	}
	return &TransitionError{"association", string(from), string(to)}
}

// CanUpdate says whether an update request may start now.
func CanUpdate(a api.DataRepositoryAssociation) error {
	switch a.Lifecycle {
	case api.LifecycleAvailable, api.LifecycleMisconfigured:
		return nil
	}
	return api.BadRequestf("association %s is %s: it can be updated only when AVAILABLE or MISCONFIGURED; wait and check its Lifecycle with describe-data-repository-associations", a.AssociationId, a.Lifecycle)
}

// CanDelete says whether a delete request may proceed. Deleting an association
// already DELETING is not an error (delete is idempotent): the caller answers
// with its current state.
func CanDelete(a api.DataRepositoryAssociation) error {
	if a.Lifecycle == api.LifecycleUpdating {
		return api.BadRequestf("association %s is UPDATING: delete it once the update ends (describe-data-repository-associations shows its Lifecycle)", a.AssociationId)
	}
	return nil
}

// Task lifecycle (docs/semantics.md §5):
//
//	PENDING ──► EXECUTING | CANCELING | FAILED
//	EXECUTING ──► SUCCEEDED | FAILED | CANCELING
//	CANCELING ──► CANCELED (| FAILED if the task breaks while winding down)
//	SUCCEEDED, FAILED, CANCELED: terminal
var taskMoves = map[api.DataRepositoryTaskLifecycle][]api.DataRepositoryTaskLifecycle{
	api.TaskPending:   {api.TaskExecuting, api.TaskCanceling, api.TaskFailed},
	api.TaskExecuting: {api.TaskSucceeded, api.TaskFailed, api.TaskCanceling},
	api.TaskCanceling: {api.TaskCanceled, api.TaskFailed},
	api.TaskSucceeded: nil,
	api.TaskFailed:    nil,
	api.TaskCanceled:  nil,
}

// TaskTransition checks a task lifecycle move.
func TaskTransition(from, to api.DataRepositoryTaskLifecycle) error {
	next, known := taskMoves[from]
	if _, ok := taskMoves[to]; !known || !ok {
		return &TransitionError{"task", string(from), string(to)}
	}
	if from == to {
		return nil
	}
	for _, n := range next {
		if n == to {
			return nil
		}
	}
	return &TransitionError{"task", string(from), string(to)}
}

// TaskEnded reports whether a task is in a terminal state.
func TaskEnded(l api.DataRepositoryTaskLifecycle) bool {
	return l == api.TaskSucceeded || l == api.TaskFailed || l == api.TaskCanceled
}

// CancelTask returns the state a CancelDataRepositoryTask request moves the
// task to: CANCELING from PENDING or EXECUTING, CANCELING again (the
// operation is idempotent) from CANCELING, DataRepositoryTaskEnded otherwise.
func CancelTask(t api.DataRepositoryTask) (api.DataRepositoryTaskLifecycle, error) {
	switch t.Lifecycle {
	case api.TaskPending, api.TaskExecuting, api.TaskCanceling:
		return api.TaskCanceling, nil
	}
	return t.Lifecycle, api.Errorf(api.CodeDataRepositoryTaskEnded, "task %s has already ended (%s): only PENDING or EXECUTING tasks can be canceled", t.TaskId, t.Lifecycle)
}
