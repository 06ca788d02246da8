// Command coze-eraser erases Coze conversations at scale and records the
// outcome of every deletion. Its commands:
//
//	coze-eraser demo                             the whole pipeline in seconds: no Redis, no token, no network
//	coze-eraser run [ID...] [--file FILE|-]      delete a set of ids from start to finish in one process
//	coze-eraser worker                           work the deletion queues until SIGTERM or SIGINT
//	coze-eraser enqueue [ID...] [--file FILE|-]  queue deletions as a batch
//	coze-eraser erase-subject --profile P ...    erase a data subject's conversations as their session, verified
//	coze-eraser sweep --bot-id B --older-than D  delete a bot's conversations older than a cutoff, as a batch
//	coze-eraser batch cancel|pause|resume|extend steer a batch
//	coze-eraser serve --api-keys FILE            the HTTP API for erasure requests
//	coze-eraser api-key new NAME                 make an API key
//	coze-eraser status [BATCH]                   how far batches are: tallies, rate, ETA, state
//	coze-eraser report BATCH                     a batch's proof of erasure, one row per id
//	coze-eraser failures list                    the ids that did not end deleted, with the API's log ids
//	coze-eraser failures retry                   queue the selected failures again
//	coze-eraser fake-api                         a local stand-in for the Coze API
//	coze-eraser healthcheck [--url URL]          ask a worker's /readyz: exit 0 if it is ready, 1 if not
//	coze-eraser version                          the version, commit and Go version of the binary
//	coze-eraser completion SHELL                 a completion script for bash, zsh, fish or powershell
//	coze-eraser help [COMMAND]                   a command's flags, each with its environment variable
//
// The benchmark against bare asynq is a binary of its own,
// cmd/coze-eraser-bench, so that this one ships the product only.
//
// Every flag but --help, --version and completion's can also be set by an
// environment variable, named beside it in --help: REDIS_URL, COZE_BASE_URL
// and the other settings every command shares, or
// COZE_ERASER_<COMMAND>_<FLAG> (COZE_ERASER_WORKER_CONCURRENCY). A flag
// given on the command line wins.
// The Coze token is never a flag: it is read from COZE_API_TOKEN or from
// the file named by COZE_API_TOKEN_FILE, one of the two.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/internal/cpuprofile"
	"github.com/coze-eraser/coze-eraser/report"
)

// Exit codes.
const (
	exitOK      = 0
	exitPartial = 1 // the command ran; some input was invalid or some work failed
	exitSetup   = 2 // the command could not run: bad flags, no token, no Redis
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	redis.SetLogger(redisLogger{})
	stopProfile := cpuprofile.Start("coze-eraser")
	code := run(ctx, os.Args[1:], env{lookup: os.LookupEnv}, os.Stdin, os.Stdout, os.Stderr)
	stop()
	stopProfile()
	os.Exit(code)
}

// printableLines makes each line of an error printable: it may carry text
// from the API (a message, a log id) or from a file, which must not reach
// the terminal as escapes. An error of several problems keeps one line
// each.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = report.Printable(l)
	}
	return strings.Join(lines, "\n")
}

// app carries what a subcommand needs from the process: its streams and
// its environment. Tests build one with their own.
type app struct {
	env    env
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, e env, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{env: e, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if exit.err != nil {
			fmt.Fprintf(stderr, "coze-eraser: %s\n", printableLines(exit.err.Error()))
		}
		return exit.code
	}
	// Cobra's own errors: unknown command or flag, wrong arguments.
	fmt.Fprintf(stderr, "coze-eraser: %v\nRun 'coze-eraser help' for usage.\n", err)
	return exitSetup
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "coze-eraser",
		Short: "Erase Coze conversations at scale, and prove it",
		Long: `coze-eraser deletes Coze conversations through a Redis-backed queue.

Producers enqueue conversation ids; workers call DELETE /v1/conversations/{id}
with retries and backoff, pause on rate limits and on a rejected token, and
record the outcome of every id, with the API's log id for every failure.

Every flag can also be set by the environment variable shown beside it; a
flag on the command line wins. Where Redis and the API are and how to log
are read by every command (REDIS_URL, COZE_BASE_URL, COZE_ERASER_LOG_FORMAT…);
any other variable names its command (COZE_ERASER_WORKER_CONCURRENCY) and
changes no other. The Coze token is read from COZE_API_TOKEN, or
from the file named by COZE_API_TOKEN_FILE; it is never a flag.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(a.demoCommand(), a.runCommand(), a.workerCommand(), a.enqueueCommand(), a.eraseSubjectCommand(), a.statusCommand(), a.reportCommand(), a.failuresCommand(), a.fakeAPICommand(),
		a.healthcheckCommand(), a.versionCommand(), a.profilesCommand(), a.apiKeyCommand(), a.serveCommand(), a.sweepCommand(), a.batchCommand())
	bindEnv(root, a.env)
	return root
}

// exitError ends a command with a given exit code; err, when not nil, is
// printed as one line.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// setupError is a command that could not start: exit 2.
func setupError(format string, args ...any) error {
	return &exitError{code: exitSetup, err: fmt.Errorf(format, args...)}
}
