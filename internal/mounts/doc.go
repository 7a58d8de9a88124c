// Package mounts is the machine's view of ferry mounts, shared by the
// daemon, the CLI and the tests: the registrations running daemons keep in
// the runtime directory (<FileSystemId>.json, with the control socket
// <FileSystemId>.sock beside it), and the kernel's mount table
// (/proc/self/mountinfo). It is a leaf: it imports no other ferry package.
package mounts
