package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

// Cipher names recorded in the config (FORMAT.md, "Encryption").
const (
	CipherXChaCha20Poly1305 = "xchacha20-poly1305"
	CipherAES256GCM         = "aes-256-gcm"
)

// MasterKeySize is the length of the random master key that key files wrap.
const MasterKeySize = 32

// Key-derivation contexts for BLAKE3's derive_key mode. Changing one changes
// every stored byte, so they are part of the format (FORMAT.md, "Keys").
const (
	ctxBlobID   = "strata v1 2026-11-24 blob id"
	ctxListID   = "strata v1 2026-11-24 list blob id"
	ctxData     = "strata v1 2026-11-24 data encryption"
	ctxMetadata = "strata v1 2026-11-24 metadata encryption"
)

// Associated data of each sealed kind; it stops one kind of object being
// presented as another.
const (
	adConfig     = "strata:config"
	adKey        = "strata:key"
	adKeyring    = "strata:keyring"
	adIndex      = "strata:index"
	adSnap       = "strata:snapshot"
	adCheckpoint = "strata:checkpoint"
	adTrailer    = "strata:pack-trailer"
	adFrame      = "strata:frame"
)

// keys are the working keys derived from the keyring (FORMAT.md §2, §4.1).
type keys struct {
	idKey    [32]byte    // data blob IDs (root)
	listKey  [32]byte    // list blob IDs: a separate key, so no data chunk can pose as a tree node (root)
	config   cipher.AEAD // the config's secrets: the root's metadata key, whatever the generation
	data     cipher.AEAD // frames, with the config's cipher: the write generation's
	metadata cipher.AEAD // index files, snapshots, segments, pack trailers: always XChaCha20-Poly1305, the write generation's
	gen      uint32      // the write generation
	gens     []genKeys   // every generation of the keyring, newest first: readers try them in this order

	// lastData and lastMeta index gens: the generation that opened the
	// last frame or metadata object is tried first, since a restore reads
	// runs of objects of one generation and a failed try costs as much
	// as a decryption.
	lastData, lastMeta atomic.Int32

	idHashers, listHashers sync.Pool // of *blake3.Hasher keyed with idKey and listKey
}

// deriveKeys derives the working keys of a repository never rotated.
func deriveKeys(master []byte, cipherName string) (*keys, error) {
	return deriveRing(rootKeyring(master), cipherName, 0)
}

// deriveRing derives the working keys of a keyring; new objects are sealed
// under generation gen, which MUST be in the ring.
func deriveRing(ring Keyring, cipherName string, gen uint32) (*keys, error) {
	var k keys
	root := ring.Root()
	blake3.DeriveKey(ctxBlobID, root, k.idKey[:])
	blake3.DeriveKey(ctxListID, root, k.listKey[:])
	for i := len(ring) - 1; i >= 0; i-- {
		gk, err := deriveGen(ring[i], cipherName)
		if err != nil {
			return nil, err
		}
		k.gens = append(k.gens, gk)
		if gk.gen == gen {
			k.data, k.metadata, k.gen = gk.data, gk.metadata, gen
		}
		if gk.gen == 0 {
			k.config = gk.metadata
		}
	}
	if k.data == nil {
		return nil, fmt.Errorf("keyring has no generation %d", gen)
	}
	return &k, nil
}

// openData opens a frame, trying each generation (FORMAT.md §4.1: a wrong
// key fails authentication, it never yields plaintext).
func (k *keys) openData(sealed []byte, ad string) ([]byte, error) {
	return k.openAny(sealed, ad, &k.lastData, func(g *genKeys) cipher.AEAD { return g.data })
}

// openMeta opens a sealed metadata object like openData.
func (k *keys) openMeta(sealed []byte, ad string) ([]byte, error) {
	return k.openAny(sealed, ad, &k.lastMeta, func(g *genKeys) cipher.AEAD { return g.metadata })
}

// openAny tries the generation at *last first, then the others newest
// first, and remembers the one that opened sealed.
func (k *keys) openAny(sealed []byte, ad string, last *atomic.Int32, aead func(*genKeys) cipher.AEAD) ([]byte, error) {
	first := int(last.Load())
	if p, err := open(nil, aead(&k.gens[first]), sealed, ad); err == nil {
		return p, nil
	}
	for i := range k.gens {
		if i == first {
			continue
		}
		if p, err := open(nil, aead(&k.gens[i]), sealed, ad); err == nil {
			last.Store(int32(i))
			return p, nil
		}
	}
	return nil, errAuth
}

func newAEAD(name string, key []byte) (cipher.AEAD, error) {
	switch name {
	case CipherXChaCha20Poly1305:
		return chacha20poly1305.NewX(key)
	case CipherAES256GCM:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	default:
		return nil, fmt.Errorf("%w: unknown cipher %q", ErrUnsupportedVersion, name)
	}
}

// seal appends nonce || AEAD(plaintext) to dst. The nonce is random: with
// XChaCha20 (192-bit nonces) collisions are negligible at any scale.
func seal(dst []byte, aead cipher.AEAD, plaintext []byte, ad string) []byte {
	ns := aead.NonceSize()
	out := append(dst, make([]byte, ns)...)
	nonce := out[len(out)-ns:]
	if _, err := rand.Read(nonce); err != nil {
		panic("strata: crypto/rand failed: " + err.Error()) // the OS has no entropy; nothing safe to do
	}
	return aead.Seal(out, nonce, plaintext, []byte(ad))
}

var errAuth = errors.New("authentication failed")

// open reverses seal. A failure is errAuth, never a partial plaintext.
func open(dst []byte, aead cipher.AEAD, sealed []byte, ad string) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < ns+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is shorter than nonce and tag", errAuth, len(sealed))
	}
	out, err := aead.Open(dst, sealed[:ns], sealed[ns:], []byte(ad))
	if err != nil {
		return nil, errAuth
	}
	return out, nil
}

// blobID computes the keyed BLAKE3 ID of a blob's plaintext. Keyed hashers
// are pooled: setting one up costs as much as hashing a few-KiB chunk.
func (k *keys) blobID(t BlobType, data []byte) ID {
	pool := &k.idHashers
	if t == ListBlob {
		pool = &k.listHashers
	}
	h, _ := pool.Get().(*blake3.Hasher)
	if h == nil {
		key := k.idKey[:]
		if t == ListBlob {
			key = k.listKey[:]
		}
		h, _ = blake3.NewKeyed(key) // the key is always 32 bytes
	}
	h.Reset() // back to the keyed initial state
	h.Write(data)
	var id ID
	h.Sum(id[:0])
	pool.Put(h)
	return id
}

// hashObject names an object by the unkeyed BLAKE3 of its stored bytes, so a
// scrub without the password can verify any object against its name.
func hashObject(b []byte) ID { return blake3.Sum256(b) }

// Key-derivation context of the S3 gateway's users file (FORMAT.md, "S3
// gateway users").
const CtxS3Users = "strata v1 2026-12-05 s3 gateway user secrets"

// DeriveKey derives a 32-byte key for a named purpose from the master key
// (BLAKE3 derive_key; FORMAT.md, "Keys"). The context MUST be one of the
// Ctx* constants, so no two purposes share a key.
func (r *Repository) DeriveKey(context string) [32]byte {
	var k [32]byte
	blake3.DeriveKey(context, r.ring.Root(), k[:])
	return k
}
