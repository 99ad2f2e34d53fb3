package s3gw

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/versity/versitygw/auth"
	vbackend "github.com/versity/versitygw/backend"
	"github.com/versity/versitygw/s3err"
	"github.com/versity/versitygw/s3response"
)

// backend adapts a Gateway to versitygw's backend.Backend: versitygw parses
// and authenticates requests (SigV4 header, presigned and aws-chunked) and
// writes the XML; the Gateway stores and answers. What it does not
// implement (ACLs, policies, tagging, CORS, …) is NotImplemented.
type backend struct {
	vbackend.BackendUnsupported
	g     *Gateway
	users *UserTable
	log   *slog.Logger
}

var _ vbackend.Backend = (*backend)(nil)

func (b *backend) String() string { return "strata" }

// account returns the authenticated access key ID of a request's context.
func account(ctx context.Context) string {
	if a, ok := ctx.Value("account").(auth.Account); ok {
		return a.Access
	}
	return ""
}

// allow checks the request's user against the bucket glob and read-only
// flag of the users file. The root account (never printed) is allowed.
func (b *backend) allow(ctx context.Context, bucket string, write bool) error {
	if write && b.g.ReadOnly() {
		return s3err.GetAPIError(s3err.ErrAccessDenied)
	}
	if b.users == nil {
		return nil
	}
	u, ok := b.users.byAccess(account(ctx))
	if !ok {
		if b.users.isRoot(account(ctx)) {
			return nil
		}
		return s3err.GetAPIError(s3err.ErrAccessDenied)
	}
	if write && u.ReadOnly || bucket != "" && !u.mayAccess(bucket) {
		return s3err.GetAPIError(s3err.ErrAccessDenied)
	}
	return nil
}

// s3error maps the Gateway's sentinels (and a versitygw error anywhere in
// the chain, such as BadDigest from the body reader) to S3 errors.
func s3error(err error) error {
	if err == nil {
		return nil
	}
	var se s3err.S3Error
	if errors.As(err, &se) {
		return se
	}
	code := s3err.ErrorCode(-1)
	switch {
	case errors.Is(err, ErrNoSuchBucket):
		code = s3err.ErrNoSuchBucket
	case errors.Is(err, ErrBucketExists):
		code = s3err.ErrBucketAlreadyOwnedByYou
	case errors.Is(err, ErrBucketNotEmpty):
		code = s3err.ErrBucketNotEmpty
	case errors.Is(err, ErrNoSuchKey):
		code = s3err.ErrNoSuchKey
	case errors.Is(err, ErrNoSuchVersion):
		code = s3err.ErrNoSuchVersion
	case errors.Is(err, ErrReadOnly):
		code = s3err.ErrAccessDenied
	case errors.Is(err, ErrLocked):
		code = s3err.ErrObjectLocked
	case errors.Is(err, ErrBadDigest):
		code = s3err.ErrBadDigest
	case errors.Is(err, ErrInvalidBucket):
		code = s3err.ErrInvalidBucketName
	case errors.Is(err, ErrInvalidKey):
		code = s3err.ErrInvalidRequest
	case errors.Is(err, ErrPreconditionFail):
		code = s3err.ErrPreconditionFailed
	case errors.Is(err, ErrNoSuchUpload):
		code = s3err.ErrNoSuchUpload
	case errors.Is(err, ErrInvalidPart):
		code = s3err.ErrInvalidPart
	case errors.Is(err, ErrInvalidPartOrder):
		code = s3err.ErrInvalidPartOrder
	case errors.Is(err, ErrEntityTooSmall):
		code = s3err.ErrEntityTooSmall
	case errors.Is(err, ErrInvalidPartNum):
		code = s3err.ErrInvalidPartNumberRange
	}
	if code < 0 {
		slog.Error("s3 gateway: internal error", "err", err)
		return err // versitygw answers InternalError
	}
	return s3err.GetAPIError(code)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

func quote(etag string) string { return `"` + etag + `"` }

func (b *backend) ListBuckets(ctx context.Context, in s3response.ListBucketsInput) (s3response.ListAllMyBucketsResult, error) {
	res := s3response.ListAllMyBucketsResult{Owner: s3response.CanonicalUser{ID: in.Owner}, Prefix: in.Prefix}
	for _, bi := range b.g.Buckets() {
		if !strings.HasPrefix(bi.Name, in.Prefix) || b.allow(ctx, bi.Name, false) != nil {
			continue
		}
		res.Buckets.Bucket = append(res.Buckets.Bucket, s3response.ListAllMyBucketsEntry{Name: bi.Name, CreationDate: bi.Created})
	}
	return res, nil
}

func (b *backend) ListBucketsAndOwners(ctx context.Context) ([]s3response.Bucket, error) {
	var out []s3response.Bucket
	for _, bi := range b.g.Buckets() {
		out = append(out, s3response.Bucket{Name: bi.Name, Owner: bi.Config.Owner})
	}
	return out, nil
}

func (b *backend) HeadBucket(ctx context.Context, in *s3.HeadBucketInput) (*s3.HeadBucketOutput, error) {
	if err := b.allow(ctx, str(in.Bucket), false); err != nil {
		return nil, err
	}
	if _, err := b.g.Bucket(str(in.Bucket)); err != nil {
		return nil, s3error(err)
	}
	return &s3.HeadBucketOutput{}, nil
}

// GetBucketAcl answers with an empty ACL owned by the bucket's creator;
// access is decided by the users file, not by ACLs.
func (b *backend) GetBucketAcl(ctx context.Context, in *s3.GetBucketAclInput) ([]byte, error) {
	bi, err := b.g.Bucket(str(in.Bucket))
	if err != nil {
		return nil, s3error(err)
	}
	return fmt.Appendf(nil, `{"Owner":%q}`, bi.Config.Owner), nil
}

func (b *backend) CreateBucket(ctx context.Context, in *s3.CreateBucketInput, defaultACL []byte) error {
	if err := b.allow(ctx, str(in.Bucket), true); err != nil {
		return err
	}
	var lock []byte
	if in.ObjectLockEnabledForBucket != nil && *in.ObjectLockEnabledForBucket {
		lock, _ = json.Marshal(auth.BucketLockConfig{Enabled: true, CreatedAt: ptr(time.Now().UTC())})
	}
	err := b.g.CreateBucket(ctx, str(in.Bucket), account(ctx), lock)
	return s3error(err)
}

func (b *backend) DeleteBucket(ctx context.Context, bucket string) error {
	if err := b.allow(ctx, bucket, true); err != nil {
		return err
	}
	return s3error(b.g.DeleteBucket(ctx, bucket))
}

func (b *backend) PutBucketVersioning(ctx context.Context, bucket string, status types.BucketVersioningStatus) error {
	if err := b.allow(ctx, bucket, true); err != nil {
		return err
	}
	return s3error(b.g.SetBucketConfig(ctx, bucket, func(r *BucketRecord) error {
		if len(r.ObjectLock) > 0 && status != types.BucketVersioningStatusEnabled {
			return s3err.GetAPIError(s3err.ErrSuspendedVersioningNotAllowed)
		}
		r.Versioning = string(status)
		return nil
	}))
}

func (b *backend) GetBucketVersioning(ctx context.Context, bucket string) (s3response.GetBucketVersioningOutput, error) {
	if err := b.allow(ctx, bucket, false); err != nil {
		return s3response.GetBucketVersioningOutput{}, err
	}
	bi, err := b.g.Bucket(bucket)
	if err != nil {
		return s3response.GetBucketVersioningOutput{}, s3error(err)
	}
	var out s3response.GetBucketVersioningOutput
	if bi.Config.Versioning != "" {
		out.Status = ptr(types.BucketVersioningStatus(bi.Config.Versioning))
	}
	return out, nil
}

func (b *backend) GetBucketPolicy(ctx context.Context, bucket string) ([]byte, error) {
	if _, err := b.g.Bucket(bucket); err != nil {
		return nil, s3error(err)
	}
	return nil, s3err.GetAPIError(s3err.ErrNoSuchBucketPolicy)
}

func (b *backend) GetBucketOwnershipControls(ctx context.Context, bucket string) (types.ObjectOwnership, error) {
	if _, err := b.g.Bucket(bucket); err != nil {
		return "", s3error(err)
	}
	return types.ObjectOwnershipBucketOwnerEnforced, nil
}

func (b *backend) PutObjectLockConfiguration(ctx context.Context, bucket string, cfg []byte) error {
	if err := b.allow(ctx, bucket, true); err != nil {
		return err
	}
	return s3error(b.g.SetBucketConfig(ctx, bucket, func(r *BucketRecord) error {
		if len(r.ObjectLock) == 0 {
			return s3err.GetAPIError(s3err.ErrObjectLockConfigurationNotAllowed)
		}
		r.ObjectLock = cfg
		return nil
	}))
}

func (b *backend) GetObjectLockConfiguration(ctx context.Context, bucket string) ([]byte, error) {
	if err := b.allow(ctx, bucket, false); err != nil {
		return nil, err
	}
	bi, err := b.g.Bucket(bucket)
	if err != nil {
		return nil, s3error(err)
	}
	if len(bi.Config.ObjectLock) == 0 {
		return nil, s3err.GetAPIError(s3err.ErrObjectLockConfigurationNotFound)
	}
	return bi.Config.ObjectLock, nil
}

// putOptions gathers what an object write records.
func putOptions(ctype *string, meta map[string]string, mode types.ObjectLockMode, until *time.Time, hold types.ObjectLockLegalHoldStatus) PutOptions {
	o := PutOptions{ContentType: str(ctype), Meta: meta}
	if mode != "" && until != nil {
		o.Retention = &Retention{Mode: string(mode), Until: until.UnixNano()}
	}
	o.LegalHold = hold == types.ObjectLockLegalHoldStatusOn
	return o
}

func (b *backend) PutObject(ctx context.Context, in s3response.PutObjectInput) (s3response.PutObjectOutput, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, true); err != nil {
		return s3response.PutObjectOutput{}, err
	}
	if in.ContentLength != nil && *in.ContentLength > 5<<30 {
		return s3response.PutObjectOutput{}, s3err.GetAPIError(s3err.ErrEntityTooLarge)
	}
	if len(key) > MaxKeyLen {
		return s3response.PutObjectOutput{}, s3err.GetKeyTooLongErr(int64(len(key)), MaxKeyLen)
	}
	o := putOptions(in.ContentType, in.Metadata, in.ObjectLockMode, in.ObjectLockRetainUntilDate, in.ObjectLockLegalHoldStatus)
	if in.ContentMD5 != nil {
		sum, err := base64.StdEncoding.DecodeString(*in.ContentMD5)
		if err != nil || len(sum) != 16 {
			return s3response.PutObjectOutput{}, s3err.GetAPIError(s3err.ErrInvalidDigest)
		}
		o.ContentMD5 = sum
	}
	o.IfNoneMatch = str(in.IfNoneMatch) == "*"
	o.Checksums = checksums(in.ChecksumCRC32, in.ChecksumCRC32C, in.ChecksumSHA1, in.ChecksumSHA256, in.ChecksumCRC64NVME)
	var body io.Reader = strings.NewReader("")
	if in.Body != nil {
		body = in.Body
	}
	if in.ContentLength != nil {
		body = &exactReader{r: body, n: *in.ContentLength}
	}
	oi, err := b.g.Put(ctx, bucket, key, body, o)
	if err != nil {
		return s3response.PutObjectOutput{}, s3error(err)
	}
	out := s3response.PutObjectOutput{ETag: quote(oi.Record.ETag), Size: ptr(oi.Record.Size)}
	if oi.VersionID != NullVersion {
		out.VersionID = oi.VersionID
	}
	return out, nil
}

// exactReader fails when the body is shorter than its Content-Length, so a
// truncated upload is an error and never a shorter object.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		return n, s3err.GetAPIError(s3err.ErrIncompleteBody)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func checksums(crc32, crc32c, sha1, sha256, crc64 *string) map[string]string {
	m := map[string]string{}
	for name, v := range map[string]*string{"CRC32": crc32, "CRC32C": crc32c, "SHA1": sha1, "SHA256": sha256, "CRC64NVME": crc64} {
		if v != nil && *v != "" {
			m[name] = *v
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// stat finds the version a GET or HEAD names. A delete marker answers
// NoSuchKey (MethodNotAllowed when asked for by version), as S3 does.
func (b *backend) stat(bucket, key string, versionID *string) (ObjectInfo, error) {
	vid := str(versionID)
	if vid == "null" {
		vid = NullVersion
	}
	oi, err := b.g.Stat(bucket, key, vid)
	if err != nil {
		if errors.Is(err, ErrNoSuchVersion) {
			return oi, s3err.GetNoSuchVersionErr(key, vid)
		}
		return oi, s3error(err)
	}
	if oi.DeleteMarker {
		if vid != "" {
			return oi, s3err.GetAPIError(s3err.ErrMethodNotAllowed)
		}
		return oi, s3err.GetAPIError(s3err.ErrNoSuchKey)
	}
	return oi, nil
}

func (b *backend) HeadObject(ctx context.Context, in *s3.HeadObjectInput) (*s3.HeadObjectOutput, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, false); err != nil {
		return nil, err
	}
	oi, err := b.stat(bucket, key, in.VersionId)
	if err != nil {
		return nil, err
	}
	rec := oi.Record
	if err := vbackend.EvaluatePreconditions(quote(rec.ETag), oi.Modified, vbackend.PreConditions{
		IfMatch: in.IfMatch, IfNoneMatch: in.IfNoneMatch, IfModSince: in.IfModifiedSince, IfUnmodeSince: in.IfUnmodifiedSince}); err != nil {
		return nil, err
	}
	size := rec.Size
	var cr *string
	if in.Range != nil {
		start, n, ok, err := vbackend.ParseObjectRange(rec.Size, *in.Range)
		if err != nil {
			return nil, err
		}
		if ok {
			size, cr = n, ptr(fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, rec.Size))
		}
	}
	out := &s3.HeadObjectOutput{ContentLength: &size, ContentRange: cr, ETag: ptr(quote(rec.ETag)), LastModified: ptr(oi.Modified),
		Metadata: rec.Meta, AcceptRanges: ptr("bytes"), StorageClass: types.StorageClassStandard}
	if rec.ContentType != "" {
		out.ContentType = ptr(rec.ContentType)
	}
	if oi.VersionID != NullVersion {
		out.VersionId = ptr(oi.VersionID)
	}
	if len(rec.PartSizes) > 0 {
		out.PartsCount = ptr(int32(len(rec.PartSizes)))
	}
	if r := rec.Retention; r != nil {
		out.ObjectLockMode = types.ObjectLockMode(r.Mode)
		out.ObjectLockRetainUntilDate = ptr(time.Unix(0, r.Until).UTC())
	}
	if rec.LegalHold {
		out.ObjectLockLegalHoldStatus = types.ObjectLockLegalHoldStatusOn
	}
	return out, nil
}

func (b *backend) GetObject(ctx context.Context, in *s3.GetObjectInput) (*s3.GetObjectOutput, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, false); err != nil {
		return nil, err
	}
	oi, err := b.stat(bucket, key, in.VersionId)
	if err != nil {
		return nil, err
	}
	rec := oi.Record
	if err := vbackend.EvaluatePreconditions(quote(rec.ETag), oi.Modified, vbackend.PreConditions{
		IfMatch: in.IfMatch, IfNoneMatch: in.IfNoneMatch, IfModSince: in.IfModifiedSince, IfUnmodeSince: in.IfUnmodifiedSince}); err != nil {
		return nil, err
	}
	start, n := int64(0), rec.Size
	var cr *string
	if in.PartNumber != nil {
		pn := *in.PartNumber
		sizes := rec.PartSizes
		if len(sizes) == 0 {
			sizes = []int64{rec.Size}
		}
		if pn < 1 || int(pn) > len(sizes) {
			return nil, s3err.GetInvalidPartNumberRangeErr(int32(len(sizes)), pn)
		}
		for _, s := range sizes[:pn-1] {
			start += s
		}
		n = sizes[pn-1]
		if rec.Size > 0 {
			cr = ptr(fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, rec.Size))
		}
	} else {
		s, l, ok, err := vbackend.ParseObjectRange(rec.Size, str(in.Range))
		if err != nil {
			return nil, err
		}
		if ok {
			start, n, cr = s, l, ptr(fmt.Sprintf("bytes %d-%d/%d", s, s+l-1, rec.Size))
		}
	}
	out := &s3.GetObjectOutput{ContentLength: &n, ContentRange: cr, ETag: ptr(quote(rec.ETag)), LastModified: ptr(oi.Modified),
		Metadata: rec.Meta, AcceptRanges: ptr("bytes"), StorageClass: types.StorageClassStandard,
		Body: b.g.Read(context.WithoutCancel(ctx), rec, start, n)}
	if rec.ContentType != "" {
		out.ContentType = ptr(rec.ContentType)
	}
	if oi.VersionID != NullVersion {
		out.VersionId = ptr(oi.VersionID)
	}
	if len(rec.PartSizes) > 0 {
		out.PartsCount = ptr(int32(len(rec.PartSizes)))
	}
	return out, nil
}

func (b *backend) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput) (*s3.DeleteObjectOutput, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, true); err != nil {
		return nil, err
	}
	vid := str(in.VersionId)
	bypass := in.BypassGovernanceRetention != nil && *in.BypassGovernanceRetention
	v, marker, err := b.g.Delete(ctx, bucket, key, vid, bypass)
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, s3err.GetAPIError(s3err.ErrObjectLocked)
		}
		return nil, s3error(err)
	}
	out := &s3.DeleteObjectOutput{}
	if marker {
		out.DeleteMarker = ptr(true)
	}
	if v != NullVersion && v != "" {
		out.VersionId = ptr(v)
	}
	return out, nil
}

func (b *backend) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput) (s3response.DeleteResult, error) {
	bucket := str(in.Bucket)
	if err := b.allow(ctx, bucket, true); err != nil {
		return s3response.DeleteResult{}, err
	}
	if _, err := b.g.Bucket(bucket); err != nil {
		return s3response.DeleteResult{}, s3error(err)
	}
	var res s3response.DeleteResult
	if in.Delete == nil {
		return res, nil
	}
	bypass := in.BypassGovernanceRetention != nil && *in.BypassGovernanceRetention
	for _, o := range in.Delete.Objects {
		key := str(o.Key)
		v, marker, err := b.g.Delete(ctx, bucket, key, str(o.VersionId), bypass)
		if err != nil {
			code, msg := "InternalError", err.Error()
			var ae s3err.APIError
			if errors.As(s3error(err), &ae) {
				code, msg = ae.Code, ae.Description
			}
			res.Error = append(res.Error, types.Error{Key: o.Key, VersionId: o.VersionId, Code: &code, Message: &msg})
			continue
		}
		d := types.DeletedObject{Key: o.Key, VersionId: o.VersionId}
		if marker {
			d.DeleteMarker = ptr(true)
			d.DeleteMarkerVersionId = ptr(v)
		}
		res.Deleted = append(res.Deleted, d)
	}
	return res, nil
}

func (b *backend) CopyObject(ctx context.Context, in s3response.CopyObjectInput) (s3response.CopyObjectOutput, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, true); err != nil {
		return s3response.CopyObjectOutput{}, err
	}
	sb, sk, srcVersion, err := parseCopySource(str(in.CopySource))
	if err != nil {
		return s3response.CopyObjectOutput{}, s3err.GetInvalidArgumentErr(s3err.InvalidArgCopySource, str(in.CopySource))
	}
	if err := b.allow(ctx, sb, false); err != nil {
		return s3response.CopyObjectOutput{}, err
	}
	var oi ObjectInfo
	oi, err = b.stat(sb, sk, ptr(srcVersion))
	if srcVersion == "" {
		oi, err = b.stat(sb, sk, nil)
	}
	if err != nil {
		return s3response.CopyObjectOutput{}, err
	}
	if err := vbackend.EvaluatePreconditions(quote(oi.Record.ETag), oi.Modified, vbackend.PreConditions{
		IfMatch: in.CopySourceIfMatch, IfNoneMatch: in.CopySourceIfNoneMatch, IfModSince: in.CopySourceIfModifiedSince, IfUnmodeSince: in.CopySourceIfUnmodifiedSince}); err != nil {
		return s3response.CopyObjectOutput{}, err
	}
	rec := *oi.Record
	rec.Version, rec.Retention, rec.LegalHold = "", nil, false
	if in.MetadataDirective == types.MetadataDirectiveReplace {
		rec.Meta, rec.ContentType = in.Metadata, str(in.ContentType)
	} else if sb == bucket && sk == key {
		return s3response.CopyObjectOutput{}, s3err.GetAPIError(s3err.ErrInvalidCopyDest)
	}
	if in.ObjectLockMode != "" && in.ObjectLockRetainUntilDate != nil {
		rec.Retention = &Retention{Mode: string(in.ObjectLockMode), Until: in.ObjectLockRetainUntilDate.UnixNano()}
	}
	// The content is not read again: the new version names the same blobs.
	noi, err := b.g.commitObject(ctx, bucket, key, &rec, false)
	if err != nil {
		return s3response.CopyObjectOutput{}, s3error(err)
	}
	out := s3response.CopyObjectOutput{CopyObjectResult: &s3response.CopyObjectResult{ETag: ptr(quote(rec.ETag)), LastModified: ptr(noi.Modified)}}
	if noi.VersionID != NullVersion {
		out.VersionId = ptr(noi.VersionID)
	}
	if oi.VersionID != NullVersion {
		out.CopySourceVersionId = ptr(oi.VersionID)
	}
	return out, nil
}

func objects(l ListResult) ([]s3response.Object, []types.CommonPrefix) {
	var objs []s3response.Object
	for _, o := range l.Objects {
		objs = append(objs, s3response.Object{Key: ptr(o.Key), ETag: ptr(quote(o.Record.ETag)), Size: ptr(o.Record.Size),
			LastModified: ptr(o.Modified), StorageClass: types.ObjectStorageClassStandard})
	}
	var cps []types.CommonPrefix
	for _, p := range l.CommonPrefixes {
		cps = append(cps, types.CommonPrefix{Prefix: ptr(p)})
	}
	return objs, cps
}

func maxKeys(p *int32) int {
	if p == nil {
		return 1000
	}
	return int(*p)
}

func (b *backend) ListObjects(ctx context.Context, in *s3.ListObjectsInput) (s3response.ListObjectsResult, error) {
	bucket := str(in.Bucket)
	if err := b.allow(ctx, bucket, false); err != nil {
		return s3response.ListObjectsResult{}, err
	}
	mk := maxKeys(in.MaxKeys)
	res := s3response.ListObjectsResult{Name: in.Bucket, Prefix: ptr(str(in.Prefix)), Marker: ptr(str(in.Marker)), MaxKeys: ptr(int32(mk)),
		Delimiter: in.Delimiter, IsTruncated: ptr(false), EncodingType: in.EncodingType}
	if mk == 0 {
		if _, err := b.g.Bucket(bucket); err != nil {
			return res, s3error(err)
		}
		return res, nil
	}
	l, err := b.g.List(bucket, ListOptions{Prefix: str(in.Prefix), Delimiter: str(in.Delimiter), After: str(in.Marker), MaxKeys: mk})
	if err != nil {
		return res, s3error(err)
	}
	res.Contents, res.CommonPrefixes = objects(l)
	res.IsTruncated = ptr(l.Truncated)
	if l.Truncated && str(in.Delimiter) != "" {
		res.NextMarker = ptr(l.Next)
	}
	return res, nil
}

func (b *backend) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input) (s3response.ListObjectsV2Result, error) {
	bucket := str(in.Bucket)
	if err := b.allow(ctx, bucket, false); err != nil {
		return s3response.ListObjectsV2Result{}, err
	}
	mk := maxKeys(in.MaxKeys)
	after := str(in.StartAfter)
	if t := str(in.ContinuationToken); t != "" {
		k, err := base64.RawURLEncoding.DecodeString(t)
		if err != nil {
			return s3response.ListObjectsV2Result{}, s3err.GetAPIError(s3err.ErrInvalidRequest)
		}
		after = max(after, string(k))
	}
	res := s3response.ListObjectsV2Result{Name: in.Bucket, Prefix: ptr(str(in.Prefix)), StartAfter: in.StartAfter, ContinuationToken: in.ContinuationToken,
		MaxKeys: ptr(int32(mk)), Delimiter: in.Delimiter, IsTruncated: ptr(false), KeyCount: ptr(int32(0)), EncodingType: in.EncodingType}
	if mk == 0 {
		if _, err := b.g.Bucket(bucket); err != nil {
			return res, s3error(err)
		}
		return res, nil
	}
	l, err := b.g.List(bucket, ListOptions{Prefix: str(in.Prefix), Delimiter: str(in.Delimiter), After: after, MaxKeys: mk})
	if err != nil {
		return res, s3error(err)
	}
	res.Contents, res.CommonPrefixes = objects(l)
	res.KeyCount = ptr(int32(len(res.Contents) + len(res.CommonPrefixes)))
	res.IsTruncated = ptr(l.Truncated)
	if l.Truncated {
		res.NextContinuationToken = ptr(base64.RawURLEncoding.EncodeToString([]byte(l.Next)))
	}
	return res, nil
}

func (b *backend) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput) (s3response.ListVersionsResult, error) {
	bucket := str(in.Bucket)
	if err := b.allow(ctx, bucket, false); err != nil {
		return s3response.ListVersionsResult{}, err
	}
	mk := maxKeys(in.MaxKeys)
	vm := str(in.VersionIdMarker)
	if vm == "null" {
		vm = NullVersion
	}
	l, err := b.g.ListVersions(bucket, VersionListOptions{Prefix: str(in.Prefix), Delimiter: str(in.Delimiter), KeyMarker: str(in.KeyMarker), VersionIDMarker: vm, MaxKeys: mk})
	if err != nil {
		return s3response.ListVersionsResult{}, s3error(err)
	}
	res := s3response.ListVersionsResult{Name: in.Bucket, Prefix: ptr(str(in.Prefix)), KeyMarker: ptr(str(in.KeyMarker)), VersionIdMarker: ptr(str(in.VersionIdMarker)),
		MaxKeys: ptr(int32(mk)), Delimiter: in.Delimiter, IsTruncated: ptr(l.Truncated), EncodingType: in.EncodingType}
	for _, v := range l.Versions {
		if v.DeleteMarker {
			res.DeleteMarkers = append(res.DeleteMarkers, types.DeleteMarkerEntry{Key: ptr(v.Key), VersionId: ptr(v.VersionID), IsLatest: ptr(v.IsLatest), LastModified: ptr(v.Modified)})
			continue
		}
		res.Versions = append(res.Versions, s3response.ObjectVersion{Key: ptr(v.Key), VersionId: ptr(v.VersionID), IsLatest: ptr(v.IsLatest), LastModified: ptr(v.Modified),
			ETag: ptr(quote(v.Record.ETag)), Size: ptr(v.Record.Size), StorageClass: types.ObjectVersionStorageClassStandard})
	}
	for _, p := range l.CommonPrefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, types.CommonPrefix{Prefix: ptr(p)})
	}
	if l.Truncated {
		res.NextKeyMarker, res.NextVersionIdMarker = ptr(l.NextKey), ptr(l.NextID)
	}
	return res, nil
}

func (b *backend) CreateMultipartUpload(ctx context.Context, in s3response.CreateMultipartUploadInput) (s3response.InitiateMultipartUploadResult, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, true); err != nil {
		return s3response.InitiateMultipartUploadResult{}, err
	}
	if len(key) > MaxKeyLen {
		return s3response.InitiateMultipartUploadResult{}, s3err.GetKeyTooLongErr(int64(len(key)), MaxKeyLen)
	}
	o := putOptions(in.ContentType, in.Metadata, in.ObjectLockMode, in.ObjectLockRetainUntilDate, in.ObjectLockLegalHoldStatus)
	id, err := b.g.CreateUpload(bucket, key, o)
	if err != nil {
		return s3response.InitiateMultipartUploadResult{}, s3error(err)
	}
	return s3response.InitiateMultipartUploadResult{Bucket: bucket, Key: key, UploadId: id}, nil
}

func (b *backend) UploadPart(ctx context.Context, in *s3.UploadPartInput) (*s3.UploadPartOutput, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, true); err != nil {
		return nil, err
	}
	if in.PartNumber == nil || *in.PartNumber < 1 || *in.PartNumber > MaxParts {
		n := ""
		if in.PartNumber != nil {
			n = fmt.Sprint(*in.PartNumber)
		}
		return nil, s3err.GetInvalidArgumentErr(s3err.InvalidArgPartNumber, n)
	}
	if in.ContentLength != nil && *in.ContentLength > 5<<30 {
		return nil, s3err.GetAPIError(s3err.ErrEntityTooLarge)
	}
	var md5sum []byte
	if in.ContentMD5 != nil {
		sum, err := base64.StdEncoding.DecodeString(*in.ContentMD5)
		if err != nil || len(sum) != 16 {
			return nil, s3err.GetAPIError(s3err.ErrInvalidDigest)
		}
		md5sum = sum
	}
	var body io.Reader = strings.NewReader("")
	if in.Body != nil {
		body = in.Body
	}
	if in.ContentLength != nil {
		body = &exactReader{r: body, n: *in.ContentLength}
	}
	etag, err := b.g.UploadPart(ctx, bucket, key, str(in.UploadId), int(*in.PartNumber), body, md5sum)
	if err != nil {
		return nil, s3error(err)
	}
	return &s3.UploadPartOutput{ETag: ptr(quote(etag))}, nil
}

func (b *backend) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput) (s3response.CompleteMultipartUploadResult, string, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, true); err != nil {
		return s3response.CompleteMultipartUploadResult{}, "", err
	}
	var parts []CompletePart
	if in.MultipartUpload != nil {
		for _, p := range in.MultipartUpload.Parts {
			if p.PartNumber == nil {
				return s3response.CompleteMultipartUploadResult{}, "", s3err.GetAPIError(s3err.ErrInvalidPart)
			}
			parts = append(parts, CompletePart{Number: int(*p.PartNumber), ETag: str(p.ETag)})
		}
	}
	oi, err := b.g.CompleteUpload(ctx, bucket, key, str(in.UploadId), parts)
	if err != nil {
		return s3response.CompleteMultipartUploadResult{}, "", s3error(err)
	}
	v := ""
	if oi.VersionID != NullVersion {
		v = oi.VersionID
	}
	return s3response.CompleteMultipartUploadResult{Bucket: ptr(bucket), Key: ptr(key), ETag: ptr(quote(oi.Record.ETag))}, v, nil
}

func (b *backend) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput) error {
	bucket := str(in.Bucket)
	if err := b.allow(ctx, bucket, true); err != nil {
		return err
	}
	return s3error(b.g.AbortUpload(bucket, str(in.Key), str(in.UploadId)))
}

func (b *backend) ListParts(ctx context.Context, in *s3.ListPartsInput) (s3response.ListPartsResult, error) {
	bucket, key := str(in.Bucket), str(in.Key)
	if err := b.allow(ctx, bucket, false); err != nil {
		return s3response.ListPartsResult{}, err
	}
	ps, err := b.g.ListParts(bucket, key, str(in.UploadId))
	if err != nil {
		return s3response.ListPartsResult{}, s3error(err)
	}
	marker := 0
	if in.PartNumberMarker != nil {
		marker, _ = strconv.Atoi(*in.PartNumberMarker)
	}
	mp := 1000
	if in.MaxParts != nil && *in.MaxParts > 0 && *in.MaxParts < 1000 {
		mp = int(*in.MaxParts)
	}
	res := s3response.ListPartsResult{Bucket: bucket, Key: key, UploadID: str(in.UploadId), PartNumberMarker: marker, MaxParts: mp, StorageClass: types.StorageClassStandard}
	for _, p := range ps {
		if p.Number <= marker {
			continue
		}
		if len(res.Parts) == mp {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, s3response.Part{PartNumber: p.Number, ETag: quote(p.ETag), Size: p.Size, LastModified: p.Modified})
		res.NextPartNumberMarker = p.Number
	}
	return res, nil
}

func (b *backend) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput) (s3response.ListMultipartUploadsResult, error) {
	bucket := str(in.Bucket)
	if err := b.allow(ctx, bucket, false); err != nil {
		return s3response.ListMultipartUploadsResult{}, err
	}
	us, err := b.g.ListUploads(bucket, str(in.Prefix))
	if err != nil {
		return s3response.ListMultipartUploadsResult{}, s3error(err)
	}
	mu := 1000
	if in.MaxUploads != nil && *in.MaxUploads > 0 && *in.MaxUploads < 1000 {
		mu = int(*in.MaxUploads)
	}
	res := s3response.ListMultipartUploadsResult{Bucket: bucket, Prefix: str(in.Prefix), KeyMarker: str(in.KeyMarker), UploadIDMarker: str(in.UploadIdMarker), MaxUploads: mu}
	for _, u := range us[uploadsAfter(us, str(in.KeyMarker), str(in.UploadIdMarker)):] {
		if len(res.Uploads) == mu {
			res.IsTruncated = true
			break
		}
		res.Uploads = append(res.Uploads, s3response.Upload{Key: u.Key, UploadID: u.ID, Initiated: u.Started, StorageClass: types.StorageClassStandard})
		res.NextKeyMarker, res.NextUploadIDMarker = u.Key, u.ID
	}
	return res, nil
}

// uploadsAfter is where a ListMultipartUploads page starts in us (sorted
// as ListUploads sorts): after keyMarker's uploads when uploadIDMarker is
// empty, else right after the upload it names. When that upload has gone
// since the last page (completed or aborted), the page starts at the first
// of keyMarker's uploads with a greater ID, as S3 documents the marker: a
// client paging through never loops and never misses a later key.
func uploadsAfter(us []UploadInfo, keyMarker, uploadIDMarker string) int {
	if keyMarker == "" {
		return 0
	}
	if uploadIDMarker != "" {
		if i := slices.IndexFunc(us, func(u UploadInfo) bool { return u.Key == keyMarker && u.ID == uploadIDMarker }); i >= 0 {
			return i + 1
		}
	}
	i := slices.IndexFunc(us, func(u UploadInfo) bool {
		return u.Key > keyMarker || u.Key == keyMarker && uploadIDMarker != "" && u.ID > uploadIDMarker
	})
	if i < 0 {
		return len(us)
	}
	return i
}

func (b *backend) GetObjectRetention(ctx context.Context, bucket, object, versionID string) ([]byte, error) {
	if err := b.allow(ctx, bucket, false); err != nil {
		return nil, err
	}
	oi, err := b.stat(bucket, object, ptr(versionID))
	if versionID == "" {
		oi, err = b.stat(bucket, object, nil)
	}
	if err != nil {
		return nil, err
	}
	r := oi.Record.Retention
	if r == nil {
		return nil, s3err.GetAPIError(s3err.ErrNoSuchObjectLockConfiguration)
	}
	return json.Marshal(types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(r.Mode), RetainUntilDate: ptr(time.Unix(0, r.Until).UTC())})
}

// errCopySource is a malformed x-amz-copy-source.
var errCopySource = errors.New("bad copy source")

// parseCopySource splits x-amz-copy-source ("[/]bucket/key[?versionId=V]",
// the key URL-encoded) into bucket, key and version.
func parseCopySource(s string) (bucket, key, version string, err error) {
	s = strings.TrimPrefix(s, "/")
	if i := strings.Index(s, "?versionId="); i >= 0 {
		s, version = s[:i], s[i+len("?versionId="):]
	}
	if u, uerr := url.PathUnescape(s); uerr == nil {
		s = u
	} else {
		return "", "", "", errCopySource
	}
	bucket, key, ok := strings.Cut(s, "/")
	if !ok || ValidBucketName(bucket) != nil || ValidKey(key) != nil {
		return "", "", "", errCopySource
	}
	return bucket, key, version, nil
}

func (b *backend) GetObjectLegalHold(ctx context.Context, bucket, object, versionID string) (*bool, error) {
	if err := b.allow(ctx, bucket, false); err != nil {
		return nil, err
	}
	oi, err := b.stat(bucket, object, ptr(versionID))
	if versionID == "" {
		oi, err = b.stat(bucket, object, nil)
	}
	if err != nil {
		return nil, err
	}
	if !oi.Record.LegalHold {
		return nil, s3err.GetAPIError(s3err.ErrNoSuchObjectLockConfiguration)
	}
	return ptr(true), nil
}
