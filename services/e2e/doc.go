// Package e2e holds the end-to-end test: every service started in the test
// process against the real servers, and the smoke journey walked through the
// gateway, as `make smoke` walks it against `make run`.
package e2e
