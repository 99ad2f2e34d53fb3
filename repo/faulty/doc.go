// Package faulty is a fault-injecting repo.Store decorator for tests: it
// passes every call to an inner store unless a rule says the call fails.
//
// # Method
//
// Rules name a Store method as a string: "Put", "Get", "GetRange", "Stat",
// "List" or "Delete". Any other name panics, as a typo would otherwise make
// a rule that never fires.
//
// # Call number
//
// Rules count the calls of their method made after the rule was added:
// n = 1 is the next call. So a test can set up a repository first and then
// fail "the second Put of the backup" without counting the setup's Puts.
// Calls reports the count since New or Reset.
//
// # Fault
//
// A failed call (FailOnce, FailAfter) does not reach the inner store. A cut
// call (CutOnce, CutAfter, PutThenFail) does, and then fails as if the
// connection dropped: a Put has stored the object but reports an error; a
// Get or GetRange reports an error wrapping io.ErrUnexpectedEOF. A full disk
// (FullDisk) fails Puts with an error wrapping syscall.ENOSPC. Injected
// errors are wrapped as "faulty store: <method> <name>: <err>"; those this
// package makes up also wrap ErrInjected.
package faulty
