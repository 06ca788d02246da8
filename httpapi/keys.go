// Package httpapi is coze-eraser's HTTP API for erasure requests: the API
// keys that guard it, and (to come) its handler.
package httpapi

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
)

// Scope is what a key may do.
type Scope string

// The scopes. A write key may read too.
const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write"
)

// Key is one API key as the keys file holds it: a name, its scopes and
// the SHA-256 of its secret (never the secret).
type Key struct {
	Name   string
	Scopes []Scope
	hash   [sha256.Size]byte
}

// Can reports whether the key has scope s (write implies read).
func (k Key) Can(s Scope) bool {
	return slices.Contains(k.Scopes, s) || (s == ScopeRead && slices.Contains(k.Scopes, ScopeWrite))
}

// Keys is a set of API keys.
type Keys struct{ keys []Key }

// maxKeysFile bounds the keys file: a few thousand keys at most.
const maxKeysFile = 1 << 20

// LoadKeys reads the keys file at path: one key a line, as
// "NAME SCOPES SHA256HEX" (scopes "read" or "read,write"), with blank lines
// and lines starting with "#" ignored. An error names the line and the rule
// it breaks; no line is ever repeated whole.
func LoadKeys(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read only
	return ParseKeys(io.LimitReader(f, maxKeysFile+1), path)
}

// ParseKeys reads keys from r, as LoadKeys does; source names r in errors.
func ParseKeys(r io.Reader, source string) (*Keys, error) {
	var (
		ks    Keys
		errs  []error
		names = map[string]int{}
		read  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	for n := 1; sc.Scan(); n++ {
		read += len(sc.Bytes()) + 1
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(line)
		if err == nil && names[k.Name] > 0 {
			err = fmt.Errorf("key %s is also on line %d: names are unique", k.Name, names[k.Name])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", source, n, err))
			continue
		}
		names[k.Name] = n
		ks.keys = append(ks.keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w (a line is at most 4096 bytes)", source, err)
	}
	if read > maxKeysFile {
		return nil, fmt.Errorf("%s: longer than %d bytes", source, maxKeysFile)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("%s: no key: add one with 'coze-eraser api-key new NAME --scope read,write'", source)
	}
	return &ks, nil
}

// parseKeyLine reads "NAME SCOPES SHA256HEX".
func parseKeyLine(line string) (Key, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return Key{}, fmt.Errorf("%d fields: want NAME SCOPES SHA256HEX", len(fields))
	}
	name, scopes, hexHash := fields[0], fields[1], fields[2]
	if err := ValidateName(name); err != nil {
		return Key{}, err
	}
	k := Key{Name: name}
	for s := range strings.SplitSeq(scopes, ",") {
		switch Scope(s) {
		case ScopeRead, ScopeWrite:
			if slices.Contains(k.Scopes, Scope(s)) {
				return Key{}, fmt.Errorf("key %s: scope %s given twice", name, s)
			}
			k.Scopes = append(k.Scopes, Scope(s))
		default:
			return Key{}, fmt.Errorf("key %s: scope %.20q: want read or read,write", name, s)
		}
	}
	raw, err := hex.DecodeString(hexHash)
	if err != nil || len(raw) != sha256.Size {
		// A secret pasted by mistake must not be echoed: say what is
		// wrong, not what is there.
		return Key{}, fmt.Errorf("key %s: the third field is not a SHA-256 in hex (64 characters): put the hash of the secret, never the secret", name)
	}
	copy(k.hash[:], raw)
	return k, nil
}

// MaxNameLen bounds a key's name.
const MaxNameLen = 64

// ValidateName checks a key's name: 1 to MaxNameLen letters, digits, '.',
// '_' or '-', starting with a letter or digit (it reaches logs).
func ValidateName(name string) error {
	ok := name != "" && len(name) <= MaxNameLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		ok = alnum || i > 0 && (c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return fmt.Errorf("key name %.70q: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", name, MaxNameLen)
	}
	return nil
}

// secretPrefix starts every secret: it tells a leaked one apart in a
// secret scanner, and a key from a Coze token.
const secretPrefix = "cze_"

// NewSecret makes a new key's secret (160 bits from crypto/rand) and the
// keys file line that admits it under name with scopes. The secret is
// shown once: only its hash is kept.
func NewSecret(name string, scopes []Scope) (secret, line string, err error) {
	if err := ValidateName(name); err != nil {
		return "", "", err
	}
	if len(scopes) == 0 {
		return "", "", errors.New("give a scope: read, or read,write")
	}
	parts := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s != ScopeRead && s != ScopeWrite {
			return "", "", fmt.Errorf("scope %.20q: want read or write", s)
		}
		if !slices.Contains(parts, string(s)) {
			parts = append(parts, string(s))
		}
	}
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", err
	}
	secret = secretPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:]))
	sum := sha256.Sum256([]byte(secret))
	return secret, fmt.Sprintf("%s %s %s", name, strings.Join(parts, ","), hex.EncodeToString(sum[:])), nil
}

// ErrUnauthenticated is a request without a known key.
var ErrUnauthenticated = errors.New("no valid API key: send Authorization: Bearer <secret>")

// Authenticate finds the key of r's "Authorization: Bearer <secret>". The
// secret's hash is compared with every key's in constant time, so the time
// taken says nothing of which key, or how much of one, matched.
func (ks *Keys) Authenticate(r *http.Request) (Key, error) {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return Key{}, ErrUnauthenticated
	}
	return ks.Check(secret)
}

// Names lists the keys' names, in file order.
func (ks *Keys) Names() []string {
	out := make([]string, len(ks.keys))
	for i, k := range ks.keys {
		out[i] = k.Name
	}
	return out
}
