package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// Config says how to reach a server and what to back up.
type Config struct {
	// URI is a mongodb:// or mongodb+srv:// connection string without a
	// password (Password carries it) and without Strata's own query
	// parameter (collections).
	URI string
	// Username and Password authenticate when Username is set (the
	// connection string's authSource and authMechanism apply).
	Username, Password string
	// Database limits the backup or restore to one database; "" means
	// every database but admin, local and config.
	Database string
	// Collections limits it further to these collections of Database.
	Collections []string
	// Timeout bounds connecting and the first command; default 10 s.
	Timeout time.Duration
}

// ErrUnreachable is wrapped when no server answers within the timeout.
var ErrUnreachable = errors.New("mongodb unreachable")

// ErrAuth is wrapped when the server refuses the credentials.
var ErrAuth = errors.New("mongodb refused the credentials")

// ErrNoOplog is wrapped when the server keeps no oplog: it is not a
// replica set member, so there is nothing to capture or to make a
// snapshot consistent with.
var ErrNoOplog = errors.New("mongodb server has no oplog (local.oplog.rs)")

// String names the server, never the password.
func (c Config) String() string {
	u, err := url.Parse(c.URI)
	if err != nil {
		return "(unparsable URI)"
	}
	u.User = nil
	if c.Username != "" {
		u.User = url.User(c.Username)
	}
	u.RawQuery = ""
	return u.String()
}

// ParseCollections splits a collections list ("a,b").
func ParseCollections(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func (c Config) wants(db, coll string) bool {
	if SkipDB(db) || skipColl(coll) {
		return false
	}
	if c.Database != "" && db != c.Database {
		return false
	}
	if len(c.Collections) == 0 {
		return true
	}
	for _, x := range c.Collections {
		if x == coll {
			return true
		}
	}
	return false
}

// Connect opens a client and proves the server answers with a ping, so a
// wrong address or password fails here, clearly.
func Connect(ctx context.Context, c Config) (*mongo.Client, error) {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	o := options.Client().ApplyURI(c.URI).SetServerSelectionTimeout(c.Timeout).SetConnectTimeout(c.Timeout).
		SetAppName("strata")
	if c.Username != "" {
		cred := options.Credential{Username: c.Username, Password: c.Password, PasswordSet: true}
		if o.Auth != nil {
			cred.AuthSource, cred.AuthMechanism = o.Auth.AuthSource, o.Auth.AuthMechanism
		}
		o.SetAuth(cred)
	}
	cli, err := mongo.Connect(o)
	if err != nil {
		return nil, fmt.Errorf("mongodb %s: %w", c, err)
	}
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := cli.Ping(pctx, readpref.Primary()); err != nil {
		cli.Disconnect(context.WithoutCancel(ctx))
		return nil, classify(c, err)
	}
	return cli, nil
}

// classify wraps a driver error in ErrAuth or ErrUnreachable when it is one.
func classify(c Config, err error) error {
	var ce mongo.CommandError
	switch {
	case errors.As(err, &ce) && (ce.Code == 18 || ce.Code == 13 && c.Username != ""),
		strings.Contains(err.Error(), "auth error"), strings.Contains(err.Error(), "AuthenticationFailed"):
		return fmt.Errorf("mongodb %s: %w: %v", c, ErrAuth, err)
	case errors.Is(err, mongo.ErrClientDisconnected), mongo.IsNetworkError(err), mongo.IsTimeout(err),
		errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "server selection"):
		return fmt.Errorf("mongodb %s: %w: %v", c, ErrUnreachable, err)
	}
	return fmt.Errorf("mongodb %s: %w", c, err)
}

// IsFerretDB reports whether the server is FerretDB (its buildInfo has
// ferretdbVersion), whose oplog logs updates as whole new documents.
func IsFerretDB(ctx context.Context, cli *mongo.Client) (bool, error) {
	var info bson.Raw
	if err := cli.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, err
	}
	_, err := info.LookupErr("ferretdbVersion")
	return err == nil, nil
}

func oplogColl(cli *mongo.Client) *mongo.Collection {
	return cli.Database("local").Collection("oplog.rs")
}

// LastTimestamp returns the timestamp of the newest oplog entry and the
// time it was written (zero for an empty oplog).
func LastTimestamp(ctx context.Context, cli *mongo.Client) (Timestamp, time.Time, error) {
	return lastTimestamp(ctx, cli, false)
}

// lastTimestamp is LastTimestamp; byTS finds the newest by timestamp
// rather than in natural order (FerretDB's natural order is commit order,
// not timestamp order).
func lastTimestamp(ctx context.Context, cli *mongo.Client, byTS bool) (Timestamp, time.Time, error) {
	n, err := cli.Database("local").ListCollectionNames(ctx, bson.D{{Key: "name", Value: "oplog.rs"}})
	if err != nil {
		return Timestamp{}, time.Time{}, err
	}
	if len(n) == 0 {
		return Timestamp{}, time.Time{}, ErrNoOplog
	}
	var doc bson.Raw
	sort := bson.D{{Key: "$natural", Value: -1}}
	if byTS {
		sort = bson.D{{Key: "ts", Value: -1}}
	}
	err = oplogColl(cli).FindOne(ctx, bson.D{}, options.FindOne().SetSort(sort).
		SetProjection(bson.D{{Key: "ts", Value: 1}, {Key: "wall", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Timestamp{}, time.Time{}, nil
	}
	if err != nil {
		return Timestamp{}, time.Time{}, err
	}
	t, i, ok := doc.Lookup("ts").TimestampOK()
	if !ok {
		return Timestamp{}, time.Time{}, fmt.Errorf("%w: the newest oplog entry has no timestamp", ErrCorrupt)
	}
	e := Entry{TS: Timestamp{t, i}}
	if ms, ok := doc.Lookup("wall").DateTimeOK(); ok {
		e.Wall = time.UnixMilli(ms).UTC()
	}
	return e.TS, e.Time(), nil
}

// FirstTimestamp returns the timestamp of the oldest oplog entry still held.
func FirstTimestamp(ctx context.Context, cli *mongo.Client) (Timestamp, error) {
	var doc bson.Raw
	err := oplogColl(cli).FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: 1}}).
		SetProjection(bson.D{{Key: "ts", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Timestamp{}, nil
	}
	if err != nil {
		return Timestamp{}, err
	}
	t, i, ok := doc.Lookup("ts").TimestampOK()
	if !ok {
		return Timestamp{}, fmt.Errorf("%w: the oldest oplog entry has no timestamp", ErrCorrupt)
	}
	return Timestamp{t, i}, nil
}
