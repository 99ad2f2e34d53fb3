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
	Wrapped []byte    `json:"wrapped"` // nonce(24) || XChaCha20-Poly1305(master key, or keyring in version 2) || tag(16)
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

// newKeyFile wraps a keyring under password: a keyring of the root alone
// as a version-1 key file (readable by every build), a rotated one as
// version 2 (FORMAT.md §4.1).
func newKeyFile(ring Keyring, password []byte, p KDFParams, host, user string) (*KeyFile, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	kf := &KeyFile{Version: 1, Created: time.Now().UTC(), Host: host, User: user, KDF: "argon2id", Params: p, Salt: make([]byte, 32)}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, err
	}
	return kf, kf.wrap(ring, password)
}

// wrap seals ring under the password's key-encryption key with the key
// file's own salt and parameters, and sets the version to match.
func (kf *KeyFile) wrap(ring Keyring, password []byte) error {
	aead, err := chacha20poly1305.NewX(kf.Params.derive(password, kf.Salt))
	if err != nil {
		return err
	}
	if len(ring) == 1 {
		kf.Version = 1
		kf.Wrapped = seal(nil, aead, ring.Root(), adKey)
	} else {
		kf.Version = 2
		kf.Wrapped = seal(nil, aead, ring.Encode(), adKeyring)
	}
	return nil
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
	if kf.Version != 1 && kf.Version != 2 {
		return nil, fmt.Errorf("%s: %w: key file version %d (this build reads 1 and 2)", name, ErrUnsupportedVersion, kf.Version)
	}
	if kf.KDF != "argon2id" {
		return nil, fmt.Errorf("%s: %w: key derivation %q", name, ErrUnsupportedVersion, kf.KDF)
	}
	if err := kf.Params.validate(); err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	const overhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	n := len(kf.Wrapped) - overhead
	ok := n == MasterKeySize
	if kf.Version == 2 {
		ok = n >= 2*keyringEntrySize && n <= MaxKeyGenerations*keyringEntrySize && n%keyringEntrySize == 0
	}
	if len(kf.Salt) < 16 || !ok {
		return nil, corrupt(name, -1, "salt or wrapped key has the wrong length")
	}
	return &kf, nil
}

// unwrap returns the keyring the key file wraps (a version-1 file: the
// master key alone), or errAuth when the password is wrong.
func (kf *KeyFile) unwrap(name string, password []byte) (Keyring, error) {
	aead, err := chacha20poly1305.NewX(kf.Params.derive(password, kf.Salt))
	if err != nil {
		return nil, err
	}
	if kf.Version == 1 {
		master, err := open(nil, aead, kf.Wrapped, adKey)
		if err != nil {
			return nil, err
		}
		return rootKeyring(master), nil
	}
	b, err := open(nil, aead, kf.Wrapped, adKeyring)
	if err != nil {
		return nil, err
	}
	ring, err := DecodeKeyring(name, b)
	if err == nil && len(ring) < 2 {
		err = corrupt(name, -1, "a version-2 key file holds at least two generations")
	}
	return ring, err
}
