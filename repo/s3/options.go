package s3

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/repo"
)

// Retention modes of S3 Object Lock.
const (
	// Governance retention can be lifted by a principal with the
	// s3:BypassGovernanceRetention permission.
	Governance = "GOVERNANCE"
	// Compliance retention binds everyone, the account's root included,
	// until it expires.
	Compliance = "COMPLIANCE"
)

// Options say which bucket to use and how. The zero value of every field
// but Endpoint and Bucket is a valid default.
type Options struct {
	Endpoint string // HOST[:PORT], no scheme
	Secure   bool   // HTTPS; false for plain HTTP
	Bucket   string
	Prefix   string // key prefix without leading or trailing slash; "" for none

	// AccessKey and SecretKey are the credentials, both empty for anonymous
	// access. The store never prints SecretKey.
	AccessKey, SecretKey string

	Region string // "" to ask the server

	// Retention, when positive, makes every Put retain the version it writes
	// for this long (package documentation, "Retention"); the bucket must
	// have Object Lock.
	Retention time.Duration
	// Mode is Governance or Compliance; "" means Governance.
	Mode string

	// Verify, when set, tells an intact object from an overwritten one
	// (package documentation, "Tamper"); repo.VerifyObject is the
	// repository's.
	Verify repo.Verifier

	// Transport carries the HTTP requests; nil means one with bounded
	// connect, TLS handshake and response header timeouts.
	Transport http.RoundTripper
}

// String describes the options as a URL, without credentials.
func (o Options) String() string {
	scheme := "s3"
	if !o.Secure {
		scheme = "s3+http"
	}
	s := scheme + "://" + o.Endpoint + "/" + o.Bucket
	if o.Prefix != "" {
		s += "/" + o.Prefix
	}
	return s
}

func (o Options) validate() error {
	if o.Endpoint == "" {
		return errors.New("no endpoint")
	}
	if u, err := url.Parse("http://" + o.Endpoint); err != nil || u.Host != o.Endpoint || u.Hostname() == "" {
		return fmt.Errorf("endpoint %q: want HOST[:PORT]", o.Endpoint)
	}
	if err := validBucket(o.Bucket); err != nil {
		return err
	}
	if err := validPrefix(o.Prefix); err != nil {
		return err
	}
	if (o.AccessKey == "") != (o.SecretKey == "") {
		return errors.New("an access key needs a secret key and the other way round")
	}
	if o.Retention < 0 {
		return fmt.Errorf("negative retention %v", o.Retention)
	}
	switch o.Mode {
	case "", Governance, Compliance:
	default:
		return fmt.Errorf("retention mode %q: want %s or %s", o.Mode, Governance, Compliance)
	}
	return nil
}

func (o Options) mode() string {
	if o.Mode == "" {
		return Governance
	}
	return o.Mode
}

// ParseURL parses s3://HOST[:PORT]/BUCKET[/PREFIX] (HTTPS) or
// s3+http://HOST[:PORT]/BUCKET[/PREFIX] (plain HTTP) into Options with
// Endpoint, Secure, Bucket and Prefix set. It rejects credentials in the
// URL, queries, fragments, an empty host, an invalid bucket name and empty,
// "." or ".." prefix segments; a trailing slash is dropped.
func ParseURL(s string) (Options, error) {
	o, err := parseURL(s)
	if err != nil {
		return Options{}, fmt.Errorf("s3 store: %w", err)
	}
	return o, nil
}

func parseURL(s string) (Options, error) {
	// Checked before parsing, so that no error message repeats a password.
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		host, _, _ := strings.Cut(rest, "/")
		if strings.Contains(host, "@") {
			return Options{}, fmt.Errorf("URL %s://…: credentials do not belong in the URL; pass them separately", scheme)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return Options{}, err
	}
	var o Options
	switch u.Scheme {
	case "s3":
		o.Secure = true
	case "s3+http":
	default:
		return Options{}, fmt.Errorf("URL %q: scheme %q, want s3:// or s3+http://", s, u.Scheme)
	}
	switch {
	case u.Opaque != "":
		return Options{}, fmt.Errorf("URL %q: want %s://HOST[:PORT]/BUCKET[/PREFIX]", s, u.Scheme)
	case u.User != nil:
		return Options{}, fmt.Errorf("URL %s://…: credentials do not belong in the URL; pass them separately", u.Scheme)
	case u.RawQuery != "" || u.ForceQuery:
		return Options{}, fmt.Errorf("URL %q: a query is not allowed", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return Options{}, fmt.Errorf("URL %q: a fragment is not allowed", s)
	case u.Host == "" || u.Hostname() == "":
		return Options{}, fmt.Errorf("URL %q: no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Options{}, fmt.Errorf("URL %q: invalid port %s", s, p)
		}
	}
	o.Endpoint = u.Host
	path := strings.TrimPrefix(u.Path, "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return Options{}, fmt.Errorf("URL %q: no bucket", s)
	}
	o.Bucket, o.Prefix = bucket, strings.TrimSuffix(prefix, "/")
	if err := validBucket(o.Bucket); err != nil {
		return Options{}, err
	}
	if err := validPrefix(o.Prefix); err != nil {
		return Options{}, err
	}
	return o, nil
}

// validBucket checks the S3 bucket naming rules: 3 to 63 lowercase letters,
// digits, dots and hyphens, starting and ending with a letter or digit, no
// two dots in a row and not an IPv4 address.
func validBucket(b string) error {
	bad := func(why string) error { return fmt.Errorf("bucket name %q: %s", b, why) }
	if len(b) < 3 || len(b) > 63 {
		return bad("want 3 to 63 characters")
	}
	for _, c := range []byte(b) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return bad("want only lowercase letters, digits, '.' and '-'")
		}
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if !alnum(b[0]) || !alnum(b[len(b)-1]) {
		return bad("must start and end with a letter or digit")
	}
	if strings.Contains(b, "..") || strings.Contains(b, ".-") || strings.Contains(b, "-.") {
		return bad("no '..', '.-' or '-.'")
	}
	if net.ParseIP(b) != nil {
		return bad("must not be an IP address")
	}
	return nil
}

func validPrefix(p string) error {
	if p == "" {
		return nil
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".", "..":
			return fmt.Errorf("prefix %q: empty, '.' or '..' segment", p)
		}
	}
	if strings.ContainsAny(p, "\\\x00") {
		return fmt.Errorf("prefix %q: backslash or NUL", p)
	}
	return nil
}
