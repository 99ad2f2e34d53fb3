package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/strata-backup/strata/repo"
)

// Sentinels callers branch on; test with errors.Is.
var (
	// ErrBucketNotFound: the bucket does not exist (Open), or vanished.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrAccessDenied: the server refused the credentials or their
	// signature, or the credentials lack a permission.
	ErrAccessDenied = errors.New("access denied (check the access key, the secret key and the bucket policy)")
	// ErrNoObjectLock: the bucket has no Object Lock configuration, but
	// locking was asked for.
	ErrNoObjectLock = errors.New("bucket has no object lock configuration")
)

// errOutOfRange is wrapped by the error of a GetRange not wholly inside the
// object.
var errOutOfRange = fmt.Errorf("range not inside the object: %w", io.ErrUnexpectedEOF)

// classified marks an error transient or permanent for repo/retry, which
// looks for the Transient method (package documentation, "Transient").
type classified struct {
	err       error
	transient bool
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() error   { return e.err }
func (e *classified) Transient() bool { return e.transient }

func permanent(err error) error { return &classified{err: err} }

// S3 error codes this package branches on.
const (
	codeNoSuchKey          = "NoSuchKey"
	codeNoSuchVersion      = "NoSuchVersion"
	codeNoSuchBucket       = "NoSuchBucket"
	codeInvalidRange       = "InvalidRange"
	codeNoLockConfig       = "ObjectLockConfigurationNotFoundError"
	codeNoRetention        = "NoSuchObjectLockConfiguration"
	codeMethodNotAllowed   = "MethodNotAllowed"
	codeOwnedByYou         = "BucketAlreadyOwnedByYou"
	codeNotImplemented     = "NotImplemented"
	codeInvalidRequest     = "InvalidRequest"
	codeSlowDown           = "SlowDown"
	codeRequestTimeout     = "RequestTimeout"
	codeInternalError      = "InternalError"
	codeServiceUnavailable = "ServiceUnavailable"
)

func code(err error) string { return minio.ToErrorResponse(err).Code }

// convert maps an error from minio-go or the network to the store's errors:
// repo.ErrNotFound, ErrBucketNotFound, ErrAccessDenied or an out-of-range
// error where they apply, each marked transient or permanent.
func convert(err error) error {
	if err == nil {
		return nil
	}
	var c *classified
	if errors.As(err, &c) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return permanent(err)
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case codeNoSuchKey, codeNoSuchVersion:
			return permanent(fmt.Errorf("%w (%s)", repo.ErrNotFound, er.Code))
		case codeNoSuchBucket:
			return permanent(fmt.Errorf("%w: %s", ErrBucketNotFound, er.BucketName))
		case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken":
			return permanent(fmt.Errorf("%w: %s: %s", ErrAccessDenied, er.Code, er.Message))
		case codeInvalidRange:
			return permanent(errOutOfRange)
		case codeSlowDown, codeRequestTimeout, codeInternalError, codeServiceUnavailable,
			"XMinioServerNotInitialized", "XMinioStorageFull":
			return &classified{err: err, transient: er.Code != "XMinioStorageFull"}
		}
		if er.StatusCode == http.StatusNotFound && er.Code == "" {
			return permanent(fmt.Errorf("%w", repo.ErrNotFound))
		}
		return &classified{err: err, transient: er.StatusCode >= 500}
	}
	return &classified{err: err, transient: transientNetwork(err)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transientNetwork reports whether a transport error may not recur: a
// refused, reset or timed-out connection or a cut body, but not a
// certificate or DNS name that is wrong.
func transientNetwork(err error) bool {
	var (
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
		verr *tls.CertificateVerificationError
		derr *net.DNSError
	)
	switch {
	case errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr), errors.As(err, &verr):
		return false
	case errors.As(err, &derr):
		return derr.IsTimeout || derr.IsTemporary
	case isTimeout(err):
		return true
	}
	// Any failure of a connection's dial, read or write: reset, refused,
	// closed under the client.
	var oerr *net.OpError
	if errors.As(err, &oerr) {
		return true
	}
	for _, t := range []error{
		io.ErrUnexpectedEOF, io.EOF, net.ErrClosed,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool { return errors.Is(err, repo.ErrNotFound) }
