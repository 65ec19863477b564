package demo

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Users are the demo's accounts; they share the demo password.
var Users = []string{"alice", "bob"}

// MinPasswordLen is the shortest demo password New accepts.
const MinPasswordLen = 8

// maxPasswordLen bounds the work a submitted password can cause.
const maxPasswordLen = 1024

// argon2id parameters: the OWASP password storage recommendation
// (19 MiB, 2 passes, 1 lane), 32-byte keys and 16-byte salts.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// user is a demo account: only the salt and argon2id hash of its password.
type user struct {
	name string
	salt [saltLen]byte
	hash [argonKeyLen]byte
}

func (u *user) String() string   { return "demo user " + u.name } // never the hash
func (u *user) GoString() string { return u.String() }

func newUser(name, password string) (*user, error) {
	u := &user{name: name}
	if _, err := rand.Read(u.salt[:]); err != nil {
		return nil, fmt.Errorf("demo: reading randomness: %w", err)
	}
	copy(u.hash[:], argon2.IDKey([]byte(password), u.salt[:], argonTime, argonMemory, argonThreads, argonKeyLen))
	return u, nil
}

// matches reports whether password is the user's, in time that depends on
// neither value.
func (u *user) matches(password string) bool {
	got := argon2.IDKey([]byte(password), u.salt[:], argonTime, argonMemory, argonThreads, argonKeyLen)
	return subtle.ConstantTimeCompare(got, u.hash[:]) == 1
}

func checkPassword(pw string) error {
	switch {
	case pw == "":
		return fmt.Errorf("demo: a password is required (pass --demo-password, or leave it out to have one generated)")
	case utf8.RuneCountInString(pw) < MinPasswordLen:
		return fmt.Errorf("demo: the password must be at least %d characters", MinPasswordLen)
	case len(pw) > maxPasswordLen:
		return fmt.Errorf("demo: the password must be at most %d bytes", maxPasswordLen)
	}
	return nil
}

// hashUsers hashes pw for every demo user, each under its own salt, and for
// a decoy that unknown user names are checked against.
func hashUsers(pw string) (map[string]*user, *user, error) {
	users := make(map[string]*user, len(Users))
	for _, name := range Users {
		u, err := newUser(name, pw)
		if err != nil {
			return nil, nil, err
		}
		users[name] = u
	}
	// The decoy's password is random: nothing matches it.
	var junk [32]byte
	if _, err := rand.Read(junk[:]); err != nil {
		return nil, nil, fmt.Errorf("demo: reading randomness: %w", err)
	}
	decoy, err := newUser("", string(junk[:]))
	if err != nil {
		return nil, nil, err
	}
	return users, decoy, nil
}

// authenticate returns the canonical user name if name and password match a
// demo user. An unknown name costs one hash too, so timing does not tell
// which users exist.
func (h *Handler) authenticate(name, password string) (string, bool) {
	if len(password) > maxPasswordLen || len(name) > 256 {
		return "", false
	}
	h.hashSem <- struct{}{}
	defer func() { <-h.hashSem }()
	u, known := h.users[strings.ToLower(name)]
	if !known {
		h.decoy.matches(password)
		return "", false
	}
	if !u.matches(password) {
		return "", false
	}
	return u.name, true
}

// passwordAlphabet has no look-alike characters (0/o, 1/l/i).
const passwordAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// GeneratePassword returns a random demo password of 20 characters from a
// 31-letter alphabet in groups of five ("k7m2q-…"), about 99 bits: easy to
// read off a terminal, hard to guess.
func GeneratePassword() string {
	const groups, per = 4, 5
	var b strings.Builder
	for g := range groups {
		if g > 0 {
			b.WriteByte('-')
		}
		for range per {
			b.WriteByte(passwordAlphabet[randIntn(len(passwordAlphabet))])
		}
	}
	return b.String()
}

// randIntn returns a uniform random int in [0, n) for small n, by rejection
// sampling. crypto/rand.Read never fails on supported platforms.
func randIntn(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("demo: crypto/rand failed: " + err.Error())
		}
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}
