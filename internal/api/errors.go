package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrorCode is an FSx error shape name; it is the "__type" of an error body.
type ErrorCode string

const (
	CodeBadRequest                        ErrorCode = "BadRequest"
	CodeIncompatibleParameterError        ErrorCode = "IncompatibleParameterError"
	CodeServiceLimitExceeded              ErrorCode = "ServiceLimitExceeded"
	CodeFileSystemNotFound                ErrorCode = "FileSystemNotFound"
	CodeDataRepositoryAssociationNotFound ErrorCode = "DataRepositoryAssociationNotFound"
	CodeDataRepositoryTaskNotFound        ErrorCode = "DataRepositoryTaskNotFound"
	CodeDataRepositoryTaskExecuting       ErrorCode = "DataRepositoryTaskExecuting"
	CodeDataRepositoryTaskEnded           ErrorCode = "DataRepositoryTaskEnded"
	CodeInternalServerError               ErrorCode = "InternalServerError"
)

// ServiceLimit values ferry uses in ServiceLimitExceeded.Limit. FSx's enum has
// no value for "associations per file system" (FSx reports that limit as a
// BadRequest-like message); ferry names it in FSx's style.
const LimitAssociationsPerFileSystem = "DATA_REPOSITORY_ASSOCIATIONS_PER_FILE_SYSTEM"

// APIError is a typed error of the control API. Its JSON form is FSx's:
// {"__type": "BadRequest", "Message": "…"}; Parameter is set on
// IncompatibleParameterError and Limit on ServiceLimitExceeded, as in FSx.
type APIError struct {
	Code      ErrorCode `json:"__type"`
	Message   string    `json:"Message"`
	Parameter string    `json:"Parameter,omitempty"`
	Limit     string    `json:"Limit,omitempty"`
}

// Errorf returns an APIError with a formatted message. The message should
// name the field and the fix.
func Errorf(code ErrorCode, format string, args ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadRequestf is Errorf(CodeBadRequest, …).
func BadRequestf(format string, args ...any) *APIError {
	return Errorf(CodeBadRequest, format, args...)
}

func (e *APIError) Error() string { return string(e.Code) + ": " + e.Message }

// Is makes errors.Is(err, &APIError{Code: c}) match any APIError with code c.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// HTTPStatus is the status the control API answers this error with. FSx
// answers every client error with 400; ferry is more specific for people
// reading logs or using curl. Clients decide by Code, never by status.
func (e *APIError) HTTPStatus() int {
	switch e.Code {
	case CodeBadRequest, CodeServiceLimitExceeded:
		return http.StatusBadRequest
	case CodeIncompatibleParameterError, CodeDataRepositoryTaskExecuting, CodeDataRepositoryTaskEnded:
		return http.StatusConflict
	case CodeFileSystemNotFound, CodeDataRepositoryAssociationNotFound, CodeDataRepositoryTaskNotFound:
		return http.StatusNotFound
	case CodeInternalServerError:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// CLIMessage is the line the aws CLI prints for a service error:
// "An error occurred (BadRequest) when calling the
// CreateDataRepositoryAssociation operation: …". aws prints it to stderr
// after an empty line and exits with CLIExitCode.
func (e *APIError) CLIMessage(operation string) string {
	return fmt.Sprintf("An error occurred (%s) when calling the %s operation: %s", e.Code, operation, e.Message)
}

// CLIExitCode is aws CLI v2's exit status for a service error.
const CLIExitCode = 254

// MarshalJSON is the default encoding; UnmarshalJSON also accepts the fully
// qualified "__type" some AWS endpoints send ("com.amazonaws.fsx#BadRequest")
// and "message" in lower case.
func (e *APIError) UnmarshalJSON(b []byte) error {
	var raw struct {
		Type      string `json:"__type"`
		Message   string `json:"Message"`
		Lower     string `json:"message"`
		Parameter string `json:"Parameter"`
		Limit     string `json:"Limit"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	code := raw.Type
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		return fmt.Errorf("error body has no __type: %.200s", b)
	}
	msg := raw.Message
	if msg == "" {
		msg = raw.Lower
	}
	*e = APIError{Code: ErrorCode(code), Message: msg, Parameter: raw.Parameter, Limit: raw.Limit}
	return nil
}

// AsAPIError returns the APIError in err's chain. An error that is not an
// APIError becomes InternalServerError with err's text, so a handler can
// always answer with a typed error.
func AsAPIError(err error) *APIError {
	var e *APIError
	if errors.As(err, &e) {
		return e
	}
	return &APIError{Code: CodeInternalServerError, Message: err.Error()}
}

// IsCode reports whether err's chain holds an APIError with this code.
func IsCode(err error, code ErrorCode) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}
