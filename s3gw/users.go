package s3gw

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	vauth "github.com/versity/versitygw/auth"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/strata-backup/strata/internal/atomicfile"
	"github.com/strata-backup/strata/repo"
	sauth "github.com/strata-backup/strata/server/auth"
)

// Users file errors.
var (
	ErrUserExists = errors.New("user already exists")
	ErrNoUser     = errors.New("no such user")
	// ErrWrongRepository: a secret does not open with this repository's key.
	ErrWrongRepository = errors.New("users file was sealed with another repository's key")
)

// maxUsersFile bounds what LoadUsers reads.
const maxUsersFile = 16 << 20

// User is one entry of the users file (FORMAT.md, "S3 gateway users").
// Sealed is the secret access key sealed with XChaCha20-Poly1305 under the
// repository-derived key, associated data "strata:s3-user:" + AccessKey.
type User struct {
	Name      string    `json:"name"`
	AccessKey string    `json:"access_key"`
	Sealed    string    `json:"sealed_secret"` // base64: nonce (24) | ciphertext
	Buckets   string    `json:"buckets"`       // glob of bucket names; "*" for all
	ReadOnly  bool      `json:"read_only,omitempty"`
	Created   time.Time `json:"created"`

	secret string // unsealed, in memory only
}

func (u *User) mayAccess(bucket string) bool { return sauth.MatchGlob(u.Buckets, bucket) }

// usersFile is the users file's JSON.
type usersFile struct {
	Version int     `json:"version"`
	Users   []*User `json:"users"`
}

// UserTable is a loaded users file with the secrets unsealed. It is the
// gateway's IAM (versitygw auth.IAMService): every user is a versitygw
// admin, and the gateway enforces its bucket glob and read-only flag.
type UserTable struct {
	users      []*User
	rootAccess string // a random account versitygw needs; never printed
	rootSecret string
}

var _ vauth.IAMService = (*UserTable)(nil)

func sealKey(r *repo.Repository) [32]byte { return r.DeriveKey(repo.CtxS3Users) }

func adFor(access string) []byte { return []byte("strata:s3-user:" + access) }

// LoadUsers reads a users file and unseals its secrets with r's key (r nil:
// the secrets stay sealed, enough to list or remove users). A missing file
// is an empty table.
func LoadUsers(path string, r *repo.Repository) (*UserTable, error) {
	t := &UserTable{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxUsersFile {
		return nil, fmt.Errorf("users file %s: larger than %d bytes", path, maxUsersFile)
	}
	var f usersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("users file %s: unknown version %d", path, f.Version)
	}
	seen := map[string]bool{}
	for i, u := range f.Users {
		if u == nil || u.Name == "" || u.AccessKey == "" || seen[u.AccessKey] {
			return nil, fmt.Errorf("users file %s: entry %d: no name, no access key, or a duplicate access key", path, i+1)
		}
		seen[u.AccessKey] = true
		if u.Buckets == "" {
			u.Buckets = "*"
		}
	}
	t.users = f.Users
	if r == nil {
		return t, nil
	}
	key := sealKey(r)
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, err
	}
	for _, u := range f.Users {
		sealed, err := base64.StdEncoding.DecodeString(u.Sealed)
		if err != nil || len(sealed) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("users file %s: user %s: bad sealed secret", path, u.Name)
		}
		plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], adFor(u.AccessKey))
		if err != nil {
			return nil, fmt.Errorf("users file %s: user %s: %w", path, u.Name, ErrWrongRepository)
		}
		u.secret = string(plain)
	}
	return t, nil
}

// Save writes the table (secrets sealed) atomically with mode 0600.
func (t *UserTable) Save(path string) error {
	b, err := json.MarshalIndent(usersFile{Version: 1, Users: t.users}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, 0o600, append(b, '\n'))
}

// Add creates a user with a new key pair sealed with r's key and returns
// the access key ID and the secret access key.
func (t *UserTable) Add(r *repo.Repository, name, buckets string, readOnly bool) (string, string, error) {
	if name == "" || strings.ContainsAny(name, "\n\r") {
		return "", "", fmt.Errorf("user name %q: must be one non-empty line", name)
	}
	for _, u := range t.users {
		if u.Name == name {
			return "", "", fmt.Errorf("%w: %s", ErrUserExists, name)
		}
	}
	if buckets == "" {
		buckets = "*"
	}
	var ak [15]byte
	var sk [30]byte
	rand.Read(ak[:])
	rand.Read(sk[:])
	access := "STR" + base32.StdEncoding.EncodeToString(ak[:])[:17]
	secret := base64.RawURLEncoding.EncodeToString(sk[:])
	key := sealKey(r)
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return "", "", err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, []byte(secret), adFor(access))
	t.users = append(t.users, &User{Name: name, AccessKey: access, Sealed: base64.StdEncoding.EncodeToString(sealed),
		Buckets: buckets, ReadOnly: readOnly, Created: time.Now().UTC().Truncate(time.Second), secret: secret})
	return access, secret, nil
}

// Remove deletes a user by name.
func (t *UserTable) Remove(name string) error {
	i := slices.IndexFunc(t.users, func(u *User) bool { return u.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	t.users = slices.Delete(t.users, i, i+1)
	return nil
}

// List returns the users (secrets not included).
func (t *UserTable) List() []User {
	out := make([]User, len(t.users))
	for i, u := range t.users {
		out[i] = *u
		out[i].secret, out[i].Sealed = "", ""
	}
	return out
}

// byAccess finds a user by access key ID, comparing in constant time.
func (t *UserTable) byAccess(access string) (*User, bool) {
	var found *User
	for _, u := range t.users {
		if subtle.ConstantTimeCompare([]byte(u.AccessKey), []byte(access)) == 1 {
			found = u
		}
	}
	return found, found != nil
}

func (t *UserTable) isRoot(access string) bool {
	return t.rootAccess != "" && subtle.ConstantTimeCompare([]byte(access), []byte(t.rootAccess)) == 1
}

// GetUserAccount returns a user's credentials for SigV4 verification.
func (t *UserTable) GetUserAccount(access string) (vauth.Account, error) {
	if u, ok := t.byAccess(access); ok {
		return vauth.Account{Access: u.AccessKey, Secret: u.secret, Role: vauth.RoleAdmin}, nil
	}
	return vauth.Account{}, vauth.ErrNoSuchUser
}

// CreateAccount is refused: users are managed with `strata s3 user`.
func (t *UserTable) CreateAccount(vauth.Account) error { return errNotHere }

// UpdateUserAccount is refused: users are managed with `strata s3 user`.
func (t *UserTable) UpdateUserAccount(string, vauth.MutableProps) error { return errNotHere }

// DeleteUserAccount is refused: users are managed with `strata s3 user`.
func (t *UserTable) DeleteUserAccount(string) error { return errNotHere }

// ResolveAccounts returns the access keys among ids that exist.
func (t *UserTable) ResolveAccounts(ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		if _, ok := t.byAccess(id); ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// ListUserAccounts lists the users without their secrets.
func (t *UserTable) ListUserAccounts() ([]vauth.Account, error) {
	var out []vauth.Account
	for _, u := range t.users {
		out = append(out, vauth.Account{Access: u.AccessKey, Role: vauth.RoleAdmin})
	}
	return out, nil
}

// Shutdown does nothing: the table is in memory.
func (t *UserTable) Shutdown() error { return nil }

var errNotHere = errors.New("users are managed with 'strata s3 user'")
