package main

import (
	"context"
	"runtime"
	"strings"
	"testing"
)

// TestVersionCommand: `version` prints the module version, the commit and
// the Go version, one "key: value" a line, for bug reports.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	res := cli{}.run(context.Background(), "version")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{"version: " + version() + "\n", "commit: ", "go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout %q lacks %q", res.stdout, want)
		}
	}
	if res := (cli{}).run(context.Background(), "--version"); res.code != exitOK || !strings.Contains(res.stdout, version()) {
		t.Errorf("--version: exit %d, stdout %q", res.code, res.stdout)
	}
}

// TestCompletionCommand: shell completion scripts for bash, zsh and fish.
func TestCompletionCommand(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{
		"bash": "__start_coze-eraser",
		"zsh":  "#compdef coze-eraser",
		"fish": "complete -c coze-eraser",
	} {
		res := cli{}.run(context.Background(), "completion", shell)
		if res.code != exitOK || !strings.Contains(res.stdout, want) {
			t.Errorf("completion %s: exit %d, stdout %.100q, stderr %q; want a script with %q", shell, res.code, res.stdout, res.stderr, want)
		}
	}
}
