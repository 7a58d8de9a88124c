// Package codecheck holds tests of the code itself rather than of what it
// does: rules of the project's shape that a reviewer should not have to
// count by hand. It has no code of its own.
package codecheck
