// Package tcpproxy is a loopback TCP proxy for tests that sever a client's
// connections to a real server (MinIO) midway: it forwards every connection
// to a target address until told to cut all of them, to refuse new ones, or
// to cut each new one after a number of bytes.
//
// # Cut
//
// A cut closes both sides of a connection with SO_LINGER 0, so each peer
// sees a reset rather than an orderly end of stream, as when a network
// path fails.
package tcpproxy
