// Package e2e starts the whole platform in one process against the real
// servers (Start), for the end-to-end journey, the hostile-input suite and the
// chaos test; its tests walk the smoke journey through the gateway, as
// `make smoke` walks it against `make run`.
package e2e
