package multi

import (
	"errors"
	"fmt"
)

// ErrUnsafePlacement is wrapped by CheckPlacement's error: losing one store
// would lose more shards of a pack than parity can rebuild.
var ErrUnsafePlacement = errors.New("unsafe shard placement")

// ShardsPerStore returns the most shards of one pack that a single store
// holds when the k+m shards are placed with shard i on store i mod n:
// ceil((k+m)/n). It is how many shards of every pack a lost store takes.
// An n below 1 counts as 1.
func ShardsPerStore(k, m, n int) int {
	n = max(n, 1)
	return (k + m + n - 1) / n
}

// Survives reports whether every k+m pack spread over n stores stays
// readable after losing any one whole store: the shards a store holds,
// ShardsPerStore(k, m, n), must be no more than the parity m. One store
// never survives its own loss.
func Survives(k, m, n int) bool {
	return n >= 2 && ShardsPerStore(k, m, n) <= m
}

// CheckPlacement returns nil if Survives(k, m, n), and otherwise an error
// wrapping ErrUnsafePlacement that says how many shards a lost store takes
// and what placement would survive, for a command to refuse an unsafe init
// or warn on open. The command adds its own way to accept the risk.
func CheckPlacement(k, m, n int) error {
	if Survives(k, m, n) {
		return nil
	}
	if n < 2 {
		return fmt.Errorf("%w: %d+%d shards on one store: losing it loses every pack; use 2 or more stores", ErrUnsafePlacement, k, m)
	}
	lost := ShardsPerStore(k, m, n)
	covers := fmt.Sprintf("parity covers %d", m)
	if m == 0 {
		covers = "there is no parity"
	}
	var fixes []string
	if m > 0 {
		// ceil((k+m)/n) ≤ m  ⇔  n ≥ (k+m)/m.
		fixes = append(fixes, fmt.Sprintf("at least %d stores", (k+m+m-1)/m))
	}
	// ceil((k+p)/n) ≤ p  ⇔  p(n-1) ≥ k.
	if p := (k + n - 2) / (n - 1); k+p <= 255 {
		fixes = append(fixes, fmt.Sprintf("%d parity shards over %d stores", p, n))
	}
	fix := "use more stores or more parity"
	switch len(fixes) {
	case 1:
		fix = "use " + fixes[0]
	case 2:
		fix = "use " + fixes[0] + ", or " + fixes[1]
	}
	return fmt.Errorf("%w: %d+%d shards over %d stores: losing one store loses %d shards of each pack but %s; %s",
		ErrUnsafePlacement, k, m, n, lost, covers, fix)
}
