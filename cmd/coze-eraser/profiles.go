package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/profiles"
	"github.com/coze-eraser/coze-eraser/report"
)

// profileFlags are the flags of every command that acts as an identity.
type profileFlags struct {
	file    string
	baseURL string
}

func (f *profileFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "profiles", "",
		"YAML file of named identities (profiles); without it the profile \"default\" is --coze-base-url with COZE_API_TOKEN or COZE_API_TOKEN_FILE")
	cmd.Flags().StringVar(&f.baseURL, "coze-base-url", coze.DefaultBaseURL,
		"Coze API base URL of the default profile (https://api.coze.com outside China)")
}

// load reads the profiles file, or builds the default profile.
func (f *profileFlags) load() (profiles.Set, error) {
	if f.file == "" {
		set, err := profiles.NewSet(profiles.Default(f.baseURL))
		if err != nil {
			return profiles.Set{}, setupError("--coze-base-url: %v", err)
		}
		return set, nil
	}
	set, err := profiles.Load(f.file)
	if err != nil {
		return profiles.Set{}, setupError("--profiles: %v", err)
	}
	return set, nil
}

// identity is a profile made usable: what gives its tokens.
type identity struct {
	profile profiles.Profile
	// static gives the token of a token-file or environment profile.
	static coze.TokenSource
	// app mints the tokens of a JWT profile, per session.
	app *coze.JWTApp
}

// check gets the identity's tokens: a JWT app mints one for itself and,
// when session is given, one for the session; a static token is read (it
// has no sessions). It returns what it proved.
func (id identity) check(ctx context.Context, session string) (string, error) {
	if id.app == nil {
		if _, err := id.static.Token(); err != nil {
			return "", err
		}
		if session != "" {
			return "ok: token read (a static token has no sessions; checked on its first call)", nil
		}
		return "ok: token read (checked on its first call)", nil
	}
	if _, err := id.app.Token(ctx, ""); err != nil {
		return "", err
	}
	if session == "" {
		return "ok: minted a token", nil
	}
	if _, err := id.app.Token(ctx, session); err != nil {
		return "", fmt.Errorf("minted a token for the app, not for the session: %w", err)
	}
	return "ok: minted a token, and one for the session", nil
}

// newIdentity builds what gives profile p's tokens. Errors name the file or
// field to fix, never a secret.
func (a *app) newIdentity(p profiles.Profile, warn func(msg string, args ...any), timeout time.Duration) (identity, error) {
	readable := func(what string) func(string, fs.FileMode) {
		return func(path string, perm fs.FileMode) {
			warn(what+" can be read by other users: make it 0600 or 0400 (Kubernetes: defaultMode 0400)",
				"profile", p.Name, "path", path, "mode", fmt.Sprintf("%04o", perm))
		}
	}
	switch {
	case p.JWT != nil:
		app, err := coze.NewJWTApp(coze.JWTConfig{
			BaseURL: p.BaseURL, AppID: p.JWT.AppID, KeyID: p.JWT.KeyID, PrivateKeyFile: p.JWT.PrivateKeyFile,
			Audience: p.JWT.Audience, TokenTTL: p.JWT.TokenTTL,
		}, coze.WithMintTimeout(timeout), coze.OnKeyReadableByOthers(readable("the private key file")))
		if err != nil {
			return identity{}, err
		}
		return identity{profile: p, app: app}, nil
	case p.TokenFile != "":
		return identity{profile: p, static: coze.FileToken(p.TokenFile, coze.OnReadableByOthers(readable("the token file")))}, nil
	default:
		src, err := tokenSource(a.env, warn)
		if err != nil {
			return identity{}, err
		}
		return identity{profile: p, static: src}, nil
	}
}

func (a *app) profilesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profiles",
		Short: "Check the identities (profiles) workers act as",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(a.profilesCheckCommand())
	return cmd
}

func (a *app) profilesCheckCommand() *cobra.Command {
	var (
		pf      profileFlags
		session string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Get a token for each profile and say what to fix",
		Long: `Get a token for each profile of --profiles (or the default profile) and
print one line per profile: ok, or the error with what to fix.

A JWT profile mints an access token (for --session when given), which proves
the app id, key id, private key, audience and the app's state. A token file
or COZE_API_TOKEN is read and checked for form only: the API has no call that
tests a token without acting, so a revoked token shows on its first call.
Exit status: 0 when every profile is ok, 1 when one is not, 2 when the
profiles file itself is wrong.`,
		Example: `  coze-eraser profiles check --profiles /etc/coze-eraser/profiles.yaml
  coze-eraser profiles check --profiles profiles.yaml --session user-4711`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 || timeout > maxRequestTimeout {
				return setupError("--timeout %v: must be more than 0s and at most %v", timeout, maxRequestTimeout)
			}
			set, err := pf.load()
			if err != nil {
				return err
			}
			if bad := a.checkProfiles(cmd.Context(), set, session, timeout); bad > 0 {
				return &exitError{code: exitPartial, err: fmt.Errorf("%d of %d profiles failed", bad, set.Len())}
			}
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&session, "session", "", "also mint a token for this session (an end user's session_name) with each JWT profile")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long each token may take")
	return cmd
}

// checkProfiles prints one line per profile and returns how many failed.
// The session name is personal data: it is not printed.
func (a *app) checkProfiles(ctx context.Context, set profiles.Set, session string, timeout time.Duration) int {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROFILE\tKIND\tRESULT")
	warnings := slog.New(slog.NewTextHandler(a.stderr, nil)).Warn
	bad := 0
	for _, name := range set.Names() {
		p, _ := set.Get(name)
		var result string
		id, err := a.newIdentity(p, warnings, timeout)
		if err == nil {
			callCtx, cancel := context.WithTimeout(ctx, timeout)
			result, err = id.check(callCtx, session)
			cancel()
		}
		if err != nil {
			bad++
			result = "FAILED: " + report.Printable(err.Error())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", name, profileKind(p), result)
	}
	if err := w.Flush(); err != nil {
		return bad + 1
	}
	return bad
}

func profileKind(p profiles.Profile) string {
	switch {
	case p.JWT != nil:
		return "jwt"
	case p.TokenFile != "":
		return "token_file"
	}
	return "env"
}
