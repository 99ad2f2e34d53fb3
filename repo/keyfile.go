package repo

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KDFParams are the argon2id parameters stored in each key file.
type KDFParams struct {
	Time      uint32 `json:"time"`       // passes
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // lanes
}

// DefaultKDF costs about a quarter of a second and 64 MiB on this class of
// machine: a guess costs an attacker the same.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}

// Bounds a key file may ask for: enough to refuse a file that would make
// opening the repository allocate gigabytes or spin for hours.
const (
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
	maxKDFTime      = 64
	maxKeyFileSize  = 64 << 10
)

// KeyFile is one password's wrapping of the master key (FORMAT.md, "Key files").
type KeyFile struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	User    string    `json:"user,omitempty"`
	KDF     string    `json:"kdf"`
	Params  KDFParams `json:"kdf_params"`
	Salt    []byte    `json:"salt"`    // 32 random bytes
	Wrapped []byte    `json:"wrapped"` // nonce(24) || XChaCha20-Poly1305(master key) || tag(16)
}

func (p KDFParams) validate() error {
	if p.Time < 1 || p.Time > maxKDFTime || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("argon2id parameters out of range: time %d, memory %d KiB, threads %d", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

func (p KDFParams) derive(password, salt []byte) []byte {
	return argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
}

// newKeyFile wraps master under password.
func newKeyFile(master, password []byte, p KDFParams, host, user string) (*KeyFile, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	kf := &KeyFile{Version: 1, Created: time.Now().UTC(), Host: host, User: user, KDF: "argon2id", Params: p, Salt: make([]byte, 32)}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(p.derive(password, kf.Salt))
	if err != nil {
		return nil, err
	}
	kf.Wrapped = seal(nil, aead, master, adKey)
	return kf, nil
}

// DecodeKeyFile parses and bounds-checks a key file without opening it;
// name is used in errors.
func DecodeKeyFile(name string, b []byte) (*KeyFile, error) { return decodeKeyFile(name, b) }

// decodeKeyFile parses a key file without opening it.
func decodeKeyFile(name string, b []byte) (*KeyFile, error) {
	if len(b) > maxKeyFileSize {
		return nil, corrupt(name, -1, "key file is %d bytes, more than %d", len(b), maxKeyFileSize)
	}
	var kf KeyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, corrupt(name, -1, "key file is not valid JSON: %v", err)
	}
	if kf.Version != 1 {
		return nil, fmt.Errorf("%s: %w: key file version %d (this build reads 1)", name, ErrUnsupportedVersion, kf.Version)
	}
	if kf.KDF != "argon2id" {
		return nil, fmt.Errorf("%s: %w: key derivation %q", name, ErrUnsupportedVersion, kf.KDF)
	}
	if err := kf.Params.validate(); err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	if len(kf.Salt) < 16 || len(kf.Wrapped) != chacha20poly1305.NonceSizeX+MasterKeySize+chacha20poly1305.Overhead {
		return nil, corrupt(name, -1, "salt or wrapped key has the wrong length")
	}
	return &kf, nil
}

// unwrap returns the master key, or errAuth when the password is wrong.
func (kf *KeyFile) unwrap(password []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kf.Params.derive(password, kf.Salt))
	if err != nil {
		return nil, err
	}
	return open(nil, aead, kf.Wrapped, adKey)
}
