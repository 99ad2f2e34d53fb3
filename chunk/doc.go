// Package chunk splits a backup's input stream into content-defined chunks.
//
// Each chunk becomes one data blob, deduplicated by its keyed ID, so the cut
// points decide how much of a stream is stored again when it changes: a cut
// that depends only on nearby content survives edits elsewhere. Two chunkers
// exist, chosen per backup and recorded in the snapshot; every parameter that
// moves a cut point comes from the versioned repository config (FORMAT.md
// section 5) and is never a tuning option.
//
// # Glossary
//
//   - Chunk: a run of consecutive stream bytes returned by [Chunker.Next]. The
//     chunks of a stream, concatenated in order, are the stream.
//   - Raw mode: content-defined chunking of arbitrary bytes with a Rabin
//     fingerprint over a 64-byte sliding window, delegated to
//     github.com/restic/chunker ([NewRabin]). Chunks average Min plus
//     2^AverageBits bytes: about 1.5 MiB with the defaults.
//   - Record mode: chunking of delimiter-separated records such as NDJSON
//     database exports ([NewRecords]). Cuts fall only at record ends (except
//     for the Max fallback), so an updated record rewrites only its own chunk.
//   - Record: the bytes after a delimiter (or from the start of the stream) up
//     to and including the next delimiter. The bytes after the last delimiter
//     form an unterminated record that never gets a cut decision. Records are
//     defined by the delimiters alone, independently of where chunks were cut.
//   - Gear table: 256 secret 64-bit values, one per byte value, derived from
//     the repository's 32-byte record seed. Keying the hash with it makes the
//     cut points unpredictable to anyone without the seed.
//   - Record hash: the Gear-table hash of one record's bytes (below).
//   - Max fallback: the forced cut at exactly Max bytes when no record end
//     qualified, so that a huge record or a delimiter-free stream is still
//     split into bounded chunks.
//
// # Record mode algorithm (FORMAT.md section 5.2)
//
// Parameters: a 32-byte seed, Min, Avg, Max and the delimiter byte D, with
// 1 ≤ Min < Avg ≤ Max ≤ 2^30. Let S = Avg − Min.
//
// Gear table: out = BLAKE3 derive_key(context "strata v1 2026-11-24 record
// chunker gear table", key material = the 32 seed bytes), extended output of
// 2048 bytes; G[i] = u64le(out[8i : 8i+8]) for i = 0..255.
//
// Record hash: h = 0 at the first byte of every record; for every byte b of the
// record, delimiter included, h = rotl64(h, 1) XOR G[b]. Equivalently, for a
// record b_0 … b_{n−1}, h = XOR over i of rotl64(G[b_i], (n−1−i) mod 64). The
// rotation, instead of the classic Gear shift h = (h << 1) + G[b] that
// forgets all but the last 64 bytes, makes every byte of the record count:
// database exports often end each line with the same constant fields, and a
// hash of the tail alone then gives every record the same decision (measured:
// 200–400-byte records with a 75-byte constant tail gave 49 KB chunks and 76%
// of a stream rewritten for 1% of records edited, against 2.6 KB and 10%).
//
// Cut rule: the stream's bytes are taken in order. L is the length of the
// current chunk including the byte just taken, n the length of the current
// record so far including that byte (after a Max fallback a record may have
// begun in an earlier chunk). After each byte:
//
//  1. If the byte is D, it ends a record of n bytes with hash h. Let
//     m = min(n, L − Min + 1), the number of the record's bytes at chunk
//     positions Min, Min+1, …, L (counting from 1). Cut after the byte if
//     m ≥ 1 and (m ≥ S or (h >> 32) < (m << 32) / S), with unsigned 64-bit
//     arithmetic and floor division. Then h and n restart at 0 for the next
//     record, whether or not there was a cut.
//  2. If there was no cut in step 1 and L = Max, cut after the byte anyway
//     (the Max fallback, which may split a record; h and n carry on).
//
// When the stream ends, the remaining bytes, if any, are the last chunk; it may
// be shorter than Min and need not end with D. An empty stream has no chunks.
//
// So no chunk but the last is shorter than Min or longer than Max, and every
// chunk but the last ends with D unless it is exactly Max long. Each record end
// cuts with probability min(1, m/S): a cut rate of one per S bytes counted
// from position Min, whatever the record lengths, which makes the mean chunk
// length exactly Min − 1 + S = Avg − 1 when records are at most S bytes long
// (counting the whole first eligible record instead of m bytes of it would
// shorten chunks by about half a record: 0.77·Avg on 300–1500-byte records).
// Records longer than S mostly form a chunk each. A decision depends only on
// the record ending there and on L, so an edited record changes at most its
// own decision (and, by moving L, those within the next Min bytes): the
// chunking falls back in step within a chunk or two.
//
// The implementation hashes only records that end at L ≥ Min (no other hash is
// ever consulted), eight bytes at a time with pre-rotated copies of the table,
// and finds delimiters with bytes.IndexByte. It offers the source at least
// 512 KiB per Read and copies each chunk once, into a slice of its exact size.
//
// # Raw mode (FORMAT.md section 5.1)
//
// [NewRabin] runs restic/chunker v0.4.0, NewWithBoundaries(src, pol, Min, Max)
// and SetAverageBits(AverageBits), with the config's secret polynomial pol,
// irreducible of degree 53 over GF(2), and 64 ≤ Min ≤ Max. What it computes:
// the fingerprint of a 64-byte window b_0 … b_63 is
// (Σ b_i(x)·x^(8·(63−i))) mod pol, where byte b_i is the polynomial whose
// coefficient of x^k is bit k of the byte. After each byte, with L the length
// of the current chunk including it: cut if L ≥ Min and the fingerprint of the
// chunk's last 64 bytes has its low AverageBits bits all zero, or if L = Max.
// The remaining bytes at the end of the stream are the last chunk. (Only the
// chunk's own bytes are in the window: restic restarts the window at every
// chunk and skips its first Min − 64 bytes.)
//
// # Ownership
//
// Every chunk is a freshly allocated slice that the chunker never touches
// again, so the caller may keep and hash many chunks concurrently.
package chunk
