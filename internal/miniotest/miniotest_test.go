package miniotest

import (
	"strings"
	"testing"

	"github.com/strata-backup/strata/repo/s3"
)

func TestBucketNameIsValid(t *testing.T) {
	for _, name := range []string{"A", "Test_Weird/Name#01", strings.Repeat("Long", 40), "---", "ünïcode/ŝub"} {
		t.Run(name, func(t *testing.T) {
			b := bucketName(t)
			if _, err := s3.ParseURL("s3://localhost/" + b); err != nil {
				t.Fatalf("bucketName = %q: %v", b, err)
			}
			if b == bucketName(t) {
				t.Fatalf("bucketName twice gave %q", b)
			}
		})
	}
}

func TestSkipsWithoutEnvironment(t *testing.T) {
	t.Setenv(EnvURL, "")
	t.Setenv(EnvBinary, "")
	skipped := true
	t.Run("shared", func(t *testing.T) {
		Bucket(t, false)
		skipped = false
	})
	t.Run("private", func(t *testing.T) {
		StartServer(t)
		skipped = false
	})
	if !skipped {
		t.Fatal("a helper went on without its environment")
	}
}
