package systemtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// TestJWTSecretsNeverLeak runs `profiles check` as a process with an OAuth
// app whose tokens are minted (one good key id, one the app does not have)
// and greps its output for the private key, the JWT, the minted access
// tokens and the session name.
func TestJWTSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fake := cozetest.NewServer(cozetest.WithJWTApp("1127900106117", map[string]*rsa.PublicKey{"kid-1": &key.PublicKey}))
	t.Cleanup(fake.Close)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	profilesFile := filepath.Join(dir, "profiles.yaml")
	profile := func(name, kid string) string {
		return "  " + name + ":\n    base_url: " + fake.URL + "\n    jwt:\n      app_id: \"1127900106117\"\n      key_id: " + kid +
			"\n      private_key_file: " + keyFile + "\n"
	}
	if err := os.WriteFile(profilesFile, []byte("profiles:\n"+profile("good", "kid-1")+profile("bad", "kid-2")), 0o600); err != nil {
		t.Fatal(err)
	}
	const session = "SESSION_user_4711_PERSONAL"
	out := run(t, nil, "profiles", "check", "--profiles", profilesFile, "--session", session) +
		run(t, map[string]string{"COZE_ERASER_PROFILES": profilesFile}, "profiles", "check")
	if fake.Mints("1127900106117", session) != 1 || fake.Mints("1127900106117", "") == 0 {
		t.Fatalf("mints %v: the check minted nothing, so this test proves nothing; output:\n%s", fake.MintCounts(), out)
	}
	if !strings.Contains(out, "invalid_client") {
		t.Errorf("the bad key id's line is missing:\n%s", out)
	}
	body := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[2] // a line of the key's base64
	for what, secret := range map[string]string{
		"the PEM header": "PRIVATE KEY", "a line of the private key": body, "a JWT": "eyJ",
		"an access token": "czs_", "the session name": session,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the output holds %s:\n%s", what, out)
		}
	}
}
