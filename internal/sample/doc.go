// Package sample generates Strata's own example data: an NDJSON export of
// user documents, the change events that turn one day's export into the
// next, and the state at any instant, all deterministic from a seed. The
// quick start, the README's walk-throughs and the tests use it, so nothing
// outside the repository is needed to try or test point-in-time recovery.
//
// # Document
//
// One JSON object a line, keyed by "_id" ("user-" and ten decimal digits, so
// byte order is number order), with a revision "rev" that counts the
// updates the document has had. The same (seed, id, rev) always renders the
// same bytes.
//
// # Day
//
// Day 0 holds Docs documents, ids 0 … Docs−1. Day d ≥ 1 applies to day d−1
// one change per UpdateRate, InsertRate and DeleteRate of its live
// documents, in an order drawn from (seed, d). Day d's export is the state
// at Start + d days; its events carry times strictly inside (Start + (d−1)
// days, Start + d days), never decreasing, in whole seconds.
//
// # Event
//
// The log's event format (README, "Point-in-time recovery"):
// {"seq":N,"ts":T,"op":"put"|"delete","key":K,"doc":{...}}. seq counts from
// 1 across all days, so the day-d export is consistent at the position
// Position(d) = the number of events of days 1 … d.
package sample
