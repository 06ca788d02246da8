package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// Check finds the key whose secret is secret, in constant time as
// [Keys.Authenticate] does. The console's login form uses it.
func (ks *Keys) Check(secret string) (Key, error) {
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	found := -1
	for i := range ks.keys {
		if subtle.ConstantTimeCompare(sum[:], ks.keys[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 || secret == "" {
		return Key{}, ErrUnauthenticated
	}
	return ks.keys[found], nil
}

// Lookup returns the key named name. The console keeps a signed-in key's
// name in its cookie and looks it up on every request, so that removing a
// key from the file ends its sessions at the next restart.
func (ks *Keys) Lookup(name string) (Key, bool) {
	for _, k := range ks.keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// Fingerprint is a short digest of the key's hash: a console session
// signs it, so that a key given a new secret under the same name ends the
// sessions of the old one.
func (k Key) Fingerprint() string {
	sum := sha256.Sum256(k.hash[:])
	return hex.EncodeToString(sum[:8])
}
