// Package atomicfile replaces files so that a crash leaves the old content
// or the new, never a mix: restore outputs and the server's tokens file.
package atomicfile
