// Package miniotest gives tests a real MinIO: a fresh bucket on the shared
// server scripts/minio.sh starts (Bucket), or a private server a test may
// stop and restart (StartServer).
//
// # Environment
//
// scripts/minio.sh start (or run) sets STRATA_TEST_S3 (s3+http://HOST:PORT),
// STRATA_TEST_S3_ACCESS_KEY, STRATA_TEST_S3_SECRET_KEY and
// STRATA_TEST_MINIO_BIN. Without them the helpers skip the test with a
// message saying so.
//
// # Cleanup
//
// A bucket's objects and the bucket are removed when the test ends, as far
// as retention allows: versions locked in compliance mode stay until the
// server's temporary directory goes.
package miniotest
