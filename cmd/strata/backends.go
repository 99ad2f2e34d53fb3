package main

// The store backends, each registering its schemes with repo/location, and
// the sources, each registering its scheme with package source. A new store
// or database is one package and one line here.
import (
	_ "github.com/strata-backup/strata/client"         // http://, https://: an index server
	_ "github.com/strata-backup/strata/repo/local"     // a directory
	_ "github.com/strata-backup/strata/repo/s3"        // s3://, s3+http://
	_ "github.com/strata-backup/strata/source/etcd"    // etcd://
	_ "github.com/strata-backup/strata/source/mongodb" // mongodb://, mongodb+srv://
	_ "github.com/strata-backup/strata/source/ndjson"  // ndjson:PATH, ndjson:- (exports and event files)
	_ "github.com/strata-backup/strata/source/redis"   // redis://
)
