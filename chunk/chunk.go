package chunk

import "errors"

// Chunker splits a stream into chunks.
type Chunker interface {
	// Next returns the next chunk of the stream, or io.EOF after the last one;
	// it never returns a chunk together with an error. A chunk is never empty.
	// The returned slice is owned by the caller: the chunker MUST NOT reuse or
	// overwrite it, so callers may keep chunks across calls and hash them in
	// parallel. A read error of the source is returned wrapped (errors.Is
	// finds it); invalid parameters give an error wrapping ErrInvalidParams.
	// Errors are sticky: once Next has returned an error, including io.EOF,
	// every later call returns the same error.
	Next() ([]byte, error)
}

// ErrInvalidParams is wrapped by the error that Next returns when a chunker
// was constructed with parameters outside their documented ranges. It is
// reported by Next rather than by the constructor so that the constructors
// keep the signatures the engine calls.
var ErrInvalidParams = errors.New("invalid chunker parameters")

// errorChunker is the Chunker of invalid parameters: it fails on first use.
type errorChunker struct{ err error }

func (e errorChunker) Next() ([]byte, error) { return nil, e.err }
