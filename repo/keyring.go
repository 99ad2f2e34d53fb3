package repo

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

// MaxKeyGenerations bounds a keyring (FORMAT.md §4.1): a reader tries at
// most this many keys on an object before calling it damaged.
const MaxKeyGenerations = 16

// Generation is one encryption-key generation of a keyring. Generation 0
// is the master key made at init (the root): it keys blob IDs and the
// config, so it never leaves the keyring.
type Generation struct {
	Gen uint32
	Key [MasterKeySize]byte
}

// Keyring is every generation a key file unlocks, in ascending order of
// generation, generation 0 first (FORMAT.md §4.1).
type Keyring []Generation

const keyringEntrySize = 4 + MasterKeySize

// Encode lays the keyring out as FORMAT.md §4.1 says:
// n × (u32le generation || 32-byte key).
func (k Keyring) Encode() []byte {
	b := make([]byte, 0, len(k)*keyringEntrySize)
	for _, g := range k {
		b = binary.LittleEndian.AppendUint32(b, g.Gen)
		b = append(b, g.Key[:]...)
	}
	return b
}

// DecodeKeyring parses and checks a keyring's plaintext: 1 to
// MaxKeyGenerations entries, generations strictly ascending from 0.
// Anything else wraps ErrCorrupt.
func DecodeKeyring(name string, b []byte) (Keyring, error) {
	if len(b) == 0 || len(b)%keyringEntrySize != 0 || len(b)/keyringEntrySize > MaxKeyGenerations {
		return nil, corrupt(name, -1, "keyring of %d bytes: want 1 to %d entries of %d bytes", len(b), MaxKeyGenerations, keyringEntrySize)
	}
	k := make(Keyring, len(b)/keyringEntrySize)
	for i := range k {
		e := b[i*keyringEntrySize:]
		k[i].Gen = binary.LittleEndian.Uint32(e)
		copy(k[i].Key[:], e[4:keyringEntrySize])
		if (i == 0 && k[i].Gen != 0) || (i > 0 && k[i].Gen <= k[i-1].Gen) {
			return nil, corrupt(name, -1, "keyring generations must ascend from 0")
		}
	}
	return k, nil
}

// Root returns generation 0, the master key of FORMAT.md §2.
func (k Keyring) Root() []byte { return k[0].Key[:] }

// Newest returns the highest generation.
func (k Keyring) Newest() uint32 { return k[len(k)-1].Gen }

// has reports whether gen is in the keyring.
func (k Keyring) has(gen uint32) bool {
	for _, g := range k {
		if g.Gen == gen {
			return true
		}
	}
	return false
}

// extends reports whether k holds every generation of old with the same key.
func (k Keyring) extends(old Keyring) bool {
	for _, o := range old {
		found := false
		for _, g := range k {
			if g.Gen == o.Gen {
				if g.Key != o.Key {
					return false
				}
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// rootKeyring is the keyring of a key file that wraps only the master key
// (key file version 1, a repository never rotated).
func rootKeyring(master []byte) Keyring {
	var g Generation
	copy(g.Key[:], master)
	return Keyring{g}
}

// genKeys are one generation's encryption keys.
type genKeys struct {
	gen            uint32
	data, metadata cipher.AEAD
}

// deriveGen derives a generation's data and metadata encryption keys with
// the contexts of FORMAT.md §2, from the generation's key.
func deriveGen(g Generation, cipherName string) (genKeys, error) {
	var dataKey, metaKey [32]byte
	blake3.DeriveKey(ctxData, g.Key[:], dataKey[:])
	blake3.DeriveKey(ctxMetadata, g.Key[:], metaKey[:])
	gk := genKeys{gen: g.Gen}
	var err error
	if gk.data, err = newAEAD(cipherName, dataKey[:]); err != nil {
		return gk, err
	}
	gk.metadata, err = chacha20poly1305.NewX(metaKey[:])
	return gk, err
}

// ErrStaleKey is returned by Open when the key file the password opens
// lacks the generation new data is written under (FORMAT.md §4.1).
var ErrStaleKey = errors.New("key file is behind a key rotation")

// keyGenerationError says that a key file's keyring lacks the generation
// the config names: the key file was left behind by an unfinished rotation
// or added by a client that had opened the repository before it.
func keyGenerationError(name string, gen uint32, ring Keyring) error {
	return fmt.Errorf("%w: the repository writes under key generation %d, but key file %s holds generations up to %d: run `strata key rotate` with a password that opens the repository and this one in --other-password-file", ErrStaleKey, gen, name, ring.Newest())
}
