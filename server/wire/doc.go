// Package wire is the index server's HTTP/JSON protocol (PROTOCOL.md): the
// request and response bodies, and the classification of object names that
// authorization rests on. Server and client both use it; it holds no state.
package wire
