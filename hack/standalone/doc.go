// Package standalone holds the tests that keep the repository readable on its
// own: no file cites a document the repository does not hold, no Markdown link
// leaves the repository or points at a file or section that is not there, and
// the wire contract (docs/api.md) lists every route the gateway serves. They
// run in `make test` with the rest of the suite and need no servers.
package standalone
