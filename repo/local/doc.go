// Package local is a repo.Store in a directory of the local file system, for
// repositories on local disks and mounted network shares.
//
// # Layout
//
// An object is a regular file (mode 0600) at the path of its slash-separated
// name below the store's directory, so "data/ab/ab12….3" is the file
// <dir>/data/ab/ab12….3; directories are made as needed (mode 0700) and left
// in place when emptied.
//
// # Temporary file
//
// Put writes a file named ".tmp-<random>" in the object's directory, syncs
// it, renames it over the object's name and syncs the directory, so a crash
// leaves either no object or the whole object, plus perhaps a stray
// temporary file. Names with a segment starting with ".tmp-" are therefore
// refused, and List never reports such files. Concurrent Puts into one
// directory share a directory sync that started after all their renames.
//
// # Batches
//
// PutBatch (repo.BatchPutter), which stores the k+m shards of a pack,
// writes and syncs every object's temporary file, renames them all and
// then syncs each directory once: k+m+1 fsyncs a pack instead of 2(k+m).
//
// # Names
//
// A valid name is non-empty and has no leading, trailing or doubled slash,
// no "." or ".." segment, no backslash and no NUL byte; any other name is an
// error wrapping ErrInvalidName, so no name reaches outside the directory.
package local
