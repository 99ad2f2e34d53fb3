// Command appendix regenerates FORMAT.md's Appendix A, the worked repository,
// after a deliberate format change:
//
//	go run ./spec/appendix FORMAT.md
//
// It writes a tiny repository into memory and replaces everything between the
// appendix markers with its objects as hex. `go test ./spec` then checks it.
package main
