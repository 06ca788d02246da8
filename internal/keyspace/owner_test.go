package keyspace_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// owners may spell key names: this package (the project's keys) and
// internal/asynqwire (asynq's).
var owners = []string{"internal/keyspace/", "internal/asynqwire/"}

// keyText matches text that builds or names a key: asynq's layout
// ("asynq:"), the default prefix followed by a name, and the fragments of
// the project's keys that hold a colon, where no space follows it (a
// "batch: NAME" line of a report is text, not a key).
var keyText = regexp.MustCompile(`asynq:[{a-z]|coze-eraser:[a-z]|` +
	`(^|[^a-z])(batch|failure|lost|lock|budget|sweep):([^ ]|$)|:(ids|adders|listings|history|open|inflight|freed|learned)($|[^a-z])`)

// testKeyText is what tests may not spell: a key under the default prefix
// or asynq's. (They do spell fragments: attack corpora hold names like
// "evil:ids:1" on purpose, and SCAN patterns match keys.)
var testKeyText = regexp.MustCompile(`asynq:[{a-z]|coze-eraser:[a-z]`)

// notKeys are literals that look like keys and are not, with why.
var notKeys = map[string]string{
	"callback/callback.go batch:callback": "an asynq task type",
	"tasks/verify.go batch:verify":        "an asynq task type",
}

// luaKeyBuild matches a Lua script building a key from the prefix itself.
var luaKeyBuild = regexp.MustCompile(`\bP \.\.`)

// TestKeysNamedOnlyHere: outside the owners, no Go string literal and no
// Lua script spells a key of the layout or of asynq's (nor a test a whole
// key):
// they call the owners' functions, so that a layout change is made in one
// place.
func TestKeysNamedOnlyHere(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		for _, o := range owners {
			if strings.HasPrefix(rel, o) {
				return nil
			}
		}
		switch filepath.Ext(path) {
		case ".go":
			checked++
			checkGo(t, path, rel)
		case ".lua":
			checked++
			checkLua(t, path, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files under %s: the walk is wrong", checked, root)
	}
}

func checkGo(t *testing.T, path, rel string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		pattern := keyText
		if strings.HasSuffix(rel, "_test.go") {
			pattern = testKeyText
		}
		if m := pattern.FindString(s); m != "" && notKeys[rel+" "+s] == "" {
			t.Errorf("%s:%d: %q spells a Redis key (%q): use internal/keyspace or internal/asynqwire",
				rel, fset.Position(lit.Pos()).Line, s, m)
		}
		return true
	})
}

func checkLua(t *testing.T, path, rel string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(src), "\n") {
		code, _, _ := strings.Cut(line, "--")
		if m := keyText.FindString(code); m != "" || luaKeyBuild.MatchString(code) {
			t.Errorf("%s:%d: %q builds a Redis key: use the key functions of the generated preludes", rel, i+1, line)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
