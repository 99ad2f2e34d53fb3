package repo

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/restic/chunker"
)

// FormatVersion is the repository format this build writes. It reads
// every version from MinFormatVersion up to it.
const FormatVersion = 2

// MinFormatVersion is the oldest repository format this build reads.
// Version 1 lacks the metadata copies of version 2 (FORMAT.md §25): it is
// read and written as it is, and Upgrade turns it into version 2.
const MinFormatVersion = 1

// supportedVersions is said in every "unsupported version" message.
var supportedVersions = fmt.Sprintf("this build reads versions %d to %d", MinFormatVersion, FormatVersion)

const maxConfigSize = 64 << 10

// Config holds every parameter that changes stored bytes (FORMAT.md,
// "Config"). It is fixed at init; writers MUST use it, readers MUST refuse a
// version they do not know.
type Config struct {
	Version int       `json:"version"`
	ID      ID        `json:"id"`
	Created time.Time `json:"created"`

	Cipher       string `json:"cipher"`      // frame AEAD: CipherXChaCha20Poly1305 or CipherAES256GCM
	Compression  string `json:"compression"` // "zstd"
	DataShards   int    `json:"data_shards"`
	ParityShards int    `json:"parity_shards"`

	ChunkerPolynomial chunker.Pol `json:"chunker_polynomial"` // secret: raw-mode Rabin polynomial
	RawMinSize        uint        `json:"raw_min_size"`
	RawMaxSize        uint        `json:"raw_max_size"`
	RawAverageBits    int         `json:"raw_average_bits"`

	RecordSeed    []byte `json:"record_seed"` // secret: 32 bytes keying the record chunker
	RecordMinSize int    `json:"record_min_size"`
	RecordAvgSize int    `json:"record_avg_size"`
	RecordMaxSize int    `json:"record_max_size"`

	TreeFanoutBits int `json:"tree_fanout_bits"` // list blobs cut after an ID whose last byte < 256>>bits
	TreeMaxEntries int `json:"tree_max_entries"` // list blobs hold at most this many IDs

	// KeyGeneration is the keyring generation new frames and sealed
	// metadata are written under (FORMAT.md §4.1); 0, the master key,
	// until the first `key rotate` commits.
	KeyGeneration uint32 `json:"key_generation,omitempty"`
}

// configEnvelope is the stored config object: only the version and the
// repository ID are in the clear, everything else is sealed because the
// chunker secrets are in it.
type configEnvelope struct {
	Version int    `json:"version"`
	ID      ID     `json:"id"`
	Sealed  []byte `json:"sealed"`
	Sum     string `json:"sum,omitempty"` // version 2: configSum, so either copy of the config is checked without a key
}

// configSum is the clear checksum of a version-2 config (FORMAT.md §3):
// hex BLAKE3 of u32le(version) || id || sealed. It lets anyone tell an
// intact copy of the config from a damaged one without the key.
func configSum(version int, id ID, sealed []byte) string {
	b := binary.LittleEndian.AppendUint32(nil, uint32(version))
	b = append(b, id[:]...)
	b = append(b, sealed...)
	return hashObject(b).String()
}

// InitOptions choose the parameters of a new repository. The zero value is a
// valid default.
type InitOptions struct {
	DataShards   int       // default 8
	ParityShards int       // default 2; 0 means the default, use NoParity for none
	NoParity     bool      // store packs without parity shards (not recommended)
	Cipher       string    // default CipherXChaCha20Poly1305
	KDF          KDFParams // default DefaultKDF
	Host, User   string    // recorded in the first key file
}

// Defaults for erasure coding: 8+2 tolerates the loss of any two shards of a
// pack for 25% overhead.
const (
	DefaultDataShards   = 8
	DefaultParityShards = 2
)

// validate fills the defaults of zero fields and checks the result.
func (o *InitOptions) validate() error {
	if o.DataShards == 0 {
		o.DataShards = DefaultDataShards
	}
	if o.ParityShards == 0 && !o.NoParity {
		o.ParityShards = DefaultParityShards
	}
	if o.Cipher == "" {
		o.Cipher = CipherXChaCha20Poly1305
	}
	if o.KDF == (KDFParams{}) {
		o.KDF = DefaultKDF
	}
	if o.DataShards < 1 || o.ParityShards < 0 || o.DataShards+o.ParityShards > 255 {
		return fmt.Errorf("invalid erasure coding %d+%d: need 1 ≤ k and k+m ≤ 255", o.DataShards, o.ParityShards)
	}
	if _, err := newAEAD(o.Cipher, make([]byte, 32)); err != nil {
		return err
	}
	return o.KDF.validate()
}

func newConfig(o InitOptions) (*Config, error) {
	c := &Config{
		Version: FormatVersion, Created: time.Now().UTC(),
		Cipher: o.Cipher, Compression: "zstd", DataShards: o.DataShards, ParityShards: o.ParityShards,
		RawMinSize: 512 << 10, RawMaxSize: 8 << 20, RawAverageBits: 20,
		RecordMinSize: 1024, RecordAvgSize: 2560, RecordMaxSize: 64 << 10,
		TreeFanoutBits: 2, TreeMaxEntries: 64,
		RecordSeed: make([]byte, 32),
	}
	if _, err := rand.Read(c.ID[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(c.RecordSeed); err != nil {
		return nil, err
	}
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return nil, err
	}
	c.ChunkerPolynomial = pol
	return c, nil
}

func (c *Config) validate() error {
	switch {
	case c.Version < MinFormatVersion || c.Version > FormatVersion:
		return fmt.Errorf("%w: config version %d (%s)", ErrUnsupportedVersion, c.Version, supportedVersions)
	case c.Compression != "zstd":
		return fmt.Errorf("%w: compression %q", ErrUnsupportedVersion, c.Compression)
	case c.DataShards < 1 || c.ParityShards < 0 || c.DataShards+c.ParityShards > 255:
		return fmt.Errorf("config: invalid erasure coding %d+%d", c.DataShards, c.ParityShards)
	case !c.ChunkerPolynomial.Irreducible():
		return fmt.Errorf("config: chunker polynomial is not irreducible")
	case len(c.RecordSeed) != 32:
		return fmt.Errorf("config: record seed must be 32 bytes")
	case c.RecordMinSize < 1 || c.RecordAvgSize <= c.RecordMinSize || c.RecordMaxSize < c.RecordAvgSize:
		return fmt.Errorf("config: invalid record chunk sizes %d/%d/%d", c.RecordMinSize, c.RecordAvgSize, c.RecordMaxSize)
	case c.RawMinSize < 1 || c.RawMaxSize <= c.RawMinSize || c.RawAverageBits < 10 || c.RawAverageBits > 30:
		return fmt.Errorf("config: invalid raw chunk sizes")
	case c.TreeFanoutBits < 1 || c.TreeFanoutBits > 7 || c.TreeMaxEntries < 2 || c.TreeMaxEntries > 4096:
		return fmt.Errorf("config: invalid tree parameters")
	}
	_, err := newAEAD(c.Cipher, make([]byte, 32))
	return err
}

func (c *Config) encode(k *keys) ([]byte, error) {
	inner, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	env := configEnvelope{Version: c.Version, ID: c.ID, Sealed: seal(nil, k.config, inner, adConfig+c.ID.String())}
	if c.Version >= 2 {
		env.Sum = configSum(env.Version, env.ID, env.Sealed)
	}
	return json.Marshal(env)
}

// peekConfig checks the clear part of the config: its version is refused
// before any key is tried.
func peekConfig(b []byte) (*configEnvelope, error) {
	if len(b) > maxConfigSize {
		return nil, corrupt("config", -1, "%d bytes, more than %d", len(b), maxConfigSize)
	}
	var env configEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, corrupt("config", -1, "not valid JSON: %v", err)
	}
	if env.Version < MinFormatVersion || env.Version > FormatVersion {
		return nil, fmt.Errorf("%w: the repository is format version %d, %s: use a strata build that reads version %d", ErrUnsupportedVersion, env.Version, supportedVersions, env.Version)
	}
	if env.Version >= 2 && env.Sum != configSum(env.Version, env.ID, env.Sealed) {
		return nil, corrupt("config", -1, "does not match its checksum (truncated or altered)")
	}
	if env.Version == 1 && env.Sum != "" {
		// Version 1 has no sum: a version-2 config whose version digit
		// was altered, which its copy must replace.
		return nil, corrupt("config", -1, "version 1 with a version-2 checksum (altered)")
	}
	return &env, nil
}

// openConfig decrypts the sealed config with the keyring's root and derives
// the working keys of the generation the config writes under. keyName
// names the key file in the error when its keyring lacks that generation.
func openConfig(env *configEnvelope, ring Keyring, keyName string) (*Config, *keys, error) {
	// The config key does not depend on the frame cipher, so derive with
	// the default first, then again with the config's cipher.
	k, err := deriveKeys(ring.Root(), CipherXChaCha20Poly1305)
	if err != nil {
		return nil, nil, err
	}
	inner, err := open(nil, k.config, env.Sealed, adConfig+env.ID.String())
	if err != nil {
		return nil, nil, corrupt("config", -1, "sealed part fails authentication")
	}
	c, err := DecodeConfig(inner)
	if err != nil {
		return nil, nil, err
	}
	if c.ID != env.ID || c.Version != env.Version {
		return nil, nil, corrupt("config", -1, "clear and sealed parts disagree")
	}
	if !ring.has(c.KeyGeneration) {
		return nil, nil, keyGenerationError(keyName, c.KeyGeneration, ring)
	}
	if k, err = deriveRing(ring, c.Cipher, c.KeyGeneration); err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

// DecodeConfig parses and validates the config's sealed JSON (after
// decryption). An unknown version or algorithm wraps ErrUnsupportedVersion.
func DecodeConfig(inner []byte) (*Config, error) {
	if len(inner) > maxConfigSize {
		return nil, corrupt("config", -1, "sealed part is %d bytes, more than %d", len(inner), maxConfigSize)
	}
	var c Config
	if err := json.Unmarshal(inner, &c); err != nil {
		return nil, corrupt("config", -1, "sealed part is not valid JSON: %v", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// PeekConfig parses the clear part of a stored config object: it is what
// a reader checks before asking for a password. An unknown version wraps
// ErrUnsupportedVersion.
func PeekConfig(b []byte) (version int, id ID, err error) {
	env, err := peekConfig(b)
	if err != nil {
		return 0, ID{}, err
	}
	return env.Version, env.ID, nil
}
