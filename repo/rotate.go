package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrRotateNeedsPassword is returned by RotateKeys when a key file opens
// with none of the passwords given: its keyring cannot be re-wrapped
// without its password (FORMAT.md §4.1).
var ErrRotateNeedsPassword = errors.New("key rotation needs the password of every key file")

// RotateReport says what RotateKeys did.
type RotateReport struct {
	From      uint32   `json:"from"`      // the write generation before
	To        uint32   `json:"to"`        // and after
	Resumed   bool     `json:"resumed"`   // an unfinished rotation (to To) was completed, no generation was made
	Rewrapped []string `json:"rewrapped"` // key files written with the new keyring
	Removed   []string `json:"removed"`   // key files they replace
}

// keySlot is one key file found by RotateKeys, opened by passwords[pw].
type keySlot struct {
	name string
	b    []byte // the stored bytes
	kf   *KeyFile
	ring Keyring
	pw   int
}

// RotateKeys makes a new key generation and re-wraps every key file so
// that each password opens the whole keyring; new frames and sealed
// metadata are then written under the new generation (FORMAT.md §4.1).
// passwords MUST hold the password of every key file (the one that opened
// r among them): a key file none of them opens is refused with
// ErrRotateNeedsPassword, naming it, before anything is written.
//
// The steps are crash-safe in this order: (1) for each key file, store the
// re-wrapped file, then delete the old one; (2) write the config's copy
// and the config with the new generation. Until (2) every writer still
// writes under the old generation, which every keyring holds, so a kill at
// any step leaves a repository each password opens and reads. A rerun
// finds the newest keyring in the key files, finishes re-wrapping to it
// (it makes no second generation) and commits. Damaged key files stop
// the rotation: repair them (check --repair) or remove them first.
func (r *Repository) RotateKeys(ctx context.Context, passwords [][]byte) (RotateReport, error) {
	rep := RotateReport{From: r.cfg.KeyGeneration}
	if r.cfg.Version < 2 {
		return rep, fmt.Errorf("key rotate: the repository is format version %d: run `strata upgrade` first", r.cfg.Version)
	}
	slots, err := r.openKeySlots(ctx, passwords)
	if err != nil {
		return rep, err
	}
	newest := slots[0].ring
	for _, s := range slots[1:] {
		if s.ring.Newest() > newest.Newest() {
			newest = s.ring
		}
	}
	for _, s := range slots {
		if !newest.extends(s.ring) {
			return rep, corrupt(s.name, -1, "its keyring disagrees with the newest keyring of the repository (generation %d)", newest.Newest())
		}
	}
	target := newest
	switch {
	case newest.Newest() < r.cfg.KeyGeneration:
		return rep, keyGenerationError(slots[0].name, r.cfg.KeyGeneration, newest)
	case newest.Newest() > r.cfg.KeyGeneration:
		rep.Resumed = true // a rotation to newest was cut short: finish it
	default:
		if len(newest) >= MaxKeyGenerations {
			return rep, fmt.Errorf("key rotate: the keyring already holds %d generations, the most a reader tries", MaxKeyGenerations)
		}
		g := Generation{Gen: newest.Newest() + 1}
		if _, err := randRead(g.Key[:]); err != nil {
			return rep, err
		}
		target = append(append(Keyring{}, newest...), g)
	}
	rep.To = target.Newest()
	newKeys, err := deriveRing(target, r.cfg.Cipher, rep.To)
	if err != nil {
		return rep, err
	}

	// (1) Re-wrap. A password that already opens a file holding the
	// target keyring needs no second one: its older files just go.
	mine, rewrapped, removed, err := r.rewrapKeyFiles(ctx, slots, target, passwords, "key rotate")
	rep.Rewrapped, rep.Removed = rewrapped, removed
	if err != nil {
		return rep, err
	}

	// (2) Commit: from here on new data is written under the new generation.
	cfg := r.cfg
	cfg.KeyGeneration = rep.To
	b, err := cfg.encode(newKeys)
	if err != nil {
		return rep, err
	}
	raw := r.rawStore()
	if err := raw.Put(ctx, CopyName(ConfigName), b); err != nil {
		return rep, fmt.Errorf("key rotate: write the config's copy: %w", err)
	}
	if err := raw.Put(ctx, ConfigName, b); err != nil {
		return rep, fmt.Errorf("key rotate: write the config: %w", err)
	}
	r.cfg, r.keys, r.ring, r.keyName = cfg, newKeys, target, mine
	return rep, nil
}

// rewrapKeyFiles gives every password of slots one key file wrapping
// target: a file that already wraps it is stored again (a cut-short run
// may have written one of its two copies, §25); any other file is
// re-wrapped, the new file stored, then the old one deleted, file by
// file, so each password opens the repository at any interruption. It
// returns the name of the key file that now stands for the one r was
// opened with, and the files written and removed; what names the errors.
func (r *Repository) rewrapKeyFiles(ctx context.Context, slots []keySlot, target Keyring, passwords [][]byte, what string) (mine string, rewrapped, removed []string, err error) {
	done := map[int]string{}
	for _, s := range slots {
		if len(s.ring) == len(target) {
			if err := r.store.Put(ctx, s.name, s.b); err != nil {
				return "", rewrapped, removed, fmt.Errorf("%s: rewrite %s: %w", what, s.name, err)
			}
			done[s.pw] = s.name
		}
	}
	mine = r.keyName
	for _, s := range slots {
		if len(s.ring) == len(target) {
			continue
		}
		if _, ok := done[s.pw]; !ok {
			kf := *s.kf
			if err := kf.wrap(target, passwords[s.pw]); err != nil {
				return "", rewrapped, removed, err
			}
			b, err := jsonMarshal(&kf)
			if err != nil {
				return "", rewrapped, removed, err
			}
			name := KeyName(hashObject(b))
			if err := r.store.Put(ctx, name, b); err != nil {
				return "", rewrapped, removed, fmt.Errorf("%s: store the re-wrapped %s: %w", what, s.name, err)
			}
			done[s.pw] = name
			rewrapped = append(rewrapped, name)
		}
		if err := r.store.Delete(ctx, s.name); err != nil && !errors.Is(err, ErrNotFound) {
			return "", rewrapped, removed, fmt.Errorf("%s: delete the replaced %s: %w", what, s.name, err)
		}
		removed = append(removed, s.name)
		if s.name == mine {
			mine = done[s.pw]
		}
	}
	return mine, rewrapped, removed, nil
}

// openKeySlots reads every key file and opens each with the first password
// that opens it. Damage and key files no password opens are refused.
func (r *Repository) openKeySlots(ctx context.Context, passwords [][]byte) ([]keySlot, error) {
	var names []string
	if err := r.store.List(ctx, KeysPrefix, func(oi ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		return nil, fmt.Errorf("key rotate: list keys: %w", err)
	}
	var slots []keySlot
	var unopened []string
	for _, name := range names {
		b, err := r.store.Get(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("key rotate: %w", err)
		}
		if err := verifyKeyFileName(name, b); err != nil {
			return nil, fmt.Errorf("key rotate: repair or remove the damaged key file first: %w", err)
		}
		kf, err := decodeKeyFile(name, b)
		if err != nil {
			return nil, fmt.Errorf("key rotate: %w", err)
		}
		opened := false
		for i, pw := range passwords {
			ring, err := kf.unwrap(name, pw)
			if errors.Is(err, errAuth) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("key rotate: %w", err)
			}
			if string(ring.Root()) != string(r.ring.Root()) {
				return nil, corrupt(name, -1, "wraps a different master key than the key that opened the repository")
			}
			slots = append(slots, keySlot{name: name, b: b, kf: kf, ring: ring, pw: i})
			opened = true
			break
		}
		if !opened {
			unopened = append(unopened, fmt.Sprintf("%s (user %q, host %q, created %s)", strings.TrimPrefix(name, KeysPrefix)[:16], kf.User, kf.Host, kf.Created.Format("2006-01-02")))
		}
	}
	if len(unopened) > 0 {
		return nil, fmt.Errorf("%w: %d key file(s) open with none of the passwords given: %s; give their passwords too, or remove them with `strata key remove ID`", ErrRotateNeedsPassword, len(unopened), strings.Join(unopened, ", "))
	}
	if len(slots) == 0 {
		return nil, corrupt("keys/", -1, "the repository has no key files")
	}
	return slots, nil
}
