package accesstoken

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// KEKSize is the size of a key-encryption key: an AES-256 key.
const KEKSize = 32

// KEKFromBase64 decodes a key-encryption key given as base64 (standard or
// URL alphabet, padded or not), e.g. from the LATCH_KEK environment
// variable. It must decode to exactly KEKSize bytes. Generate one with
//
//	openssl rand -base64 32
func KEKFromBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			if len(b) != KEKSize {
				return nil, fmt.Errorf("%w: want %d bytes, got %d (generate one with: openssl rand -base64 32)",
					ErrKEK, KEKSize, len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: not base64 (generate one with: openssl rand -base64 32)", ErrKEK)
}

// LoadOrCreateKEKFile reads a key-encryption key from path: a regular file
// of exactly KEKSize raw bytes with no group or other permission bits. If
// the file does not exist it is created with mode 0600 and KEKSize random
// bytes. A file readable by group or others, of the wrong size, or not a
// regular file is refused with an error matching ErrKEK.
func LoadOrCreateKEKFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		kek := make([]byte, KEKSize)
		if _, err := io.ReadFull(rand.Reader, kek); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("accesstoken: generating KEK: %w", err)
		}
		_, err = f.Write(kek)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("accesstoken: writing KEK file %s: %w", path, err)
		}
		return kek, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("accesstoken: creating KEK file: %w", err)
	}
	f, err = os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("accesstoken: opening KEK file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("accesstoken: KEK file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKEK, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is accessible by group or others (mode %v); run: chmod 600 %s",
			ErrKEK, path, fi.Mode().Perm(), path)
	}
	if fi.Size() != KEKSize {
		return nil, fmt.Errorf("%w: %s must hold exactly %d bytes", ErrKEK, path, KEKSize)
	}
	kek := make([]byte, KEKSize)
	if _, err := io.ReadFull(f, kek); err != nil {
		return nil, fmt.Errorf("%w: reading %s failed", ErrKEK, path)
	}
	return kek, nil
}
