package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// AppendAudit writes records to the repository's audit trail directly on
// its store, as one audit object chained to the newest one (PROTOCOL.md
// §7), for commands that change a repository without an index server
// (`key rotate --reencrypt`). A server running on the same store at the
// same time may chain its next object to the same predecessor; `strata
// audit` then reports the fork, which is the honest outcome. Records are
// clipped as a server clips its own.
func AppendAudit(ctx context.Context, st repo.Store, recs ...wire.AuditRecord) error {
	a, err := openAuditLog(ctx, st, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	for i := range recs {
		bound(&recs[i])
		a.buf = append(a.buf, recs[i])
	}
	return a.flush(ctx, false)
}
