// Package boundaries holds the test that keeps the code's layers apart: the
// arrows docs/architecture.md draws are the only imports allowed between the
// module's packages. It runs in `make test` and needs no servers.
package boundaries
