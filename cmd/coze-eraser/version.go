package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildCommit is set at build time (-ldflags "-X main.buildCommit=…") by
// builds without VCS information, such as the Docker image's: its build
// context leaves .git out.
var buildCommit string

// buildFacts are what `coze-eraser version` prints for a bug report.
type buildFacts struct {
	version    string
	commit     string // "unknown" when the build recorded none
	commitTime string
	modified   bool // built from a tree with uncommitted changes
}

func readBuildFacts() buildFacts {
	b := buildFacts{version: version(), commit: buildCommit}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.commit == "" {
					b.commit = s.Value
				}
			case "vcs.time":
				b.commitTime = s.Value
			case "vcs.modified":
				b.modified = s.Value == "true"
			}
		}
	}
	if b.commit == "" {
		b.commit = "unknown"
	}
	return b
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b := readBuildFacts()
			commit := b.commit
			if b.modified {
				commit += " (modified)"
			}
			fmt.Fprintf(a.stdout, "version: %s\ncommit: %s\n", b.version, commit)
			if b.commitTime != "" {
				fmt.Fprintf(a.stdout, "commit_time: %s\n", b.commitTime)
			}
			fmt.Fprintf(a.stdout, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
