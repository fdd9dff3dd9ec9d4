// Package importcheck holds a test that keeps the package map of
// docs/DESIGN.md true: it lists every package's imports with `go list` and
// fails on an import the map forbids (an arrow pointing up, a protocol
// package reaching for fds, a transport-agnostic package importing a
// transport).
package importcheck
