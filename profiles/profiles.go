package profiles

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// DefaultName is the name of the profile that stands for the configuration
// without a profiles file; see [Default].
const DefaultName = tasks.DefaultProfile

// MaxNameLen is the longest profile name accepted.
const MaxNameLen = tasks.MaxProfileLen

// Bounds and default of [JWT.TokenTTL], those of coze.JWTConfig: the token
// endpoint's duration_seconds is at most 86399 and defaults to 900.
const (
	DefaultTokenTTL = coze.DefaultTokenTTL
	MinTokenTTL     = time.Second
	MaxTokenTTL     = coze.MaxTokenTTL
)

// Profile is one identity: the API it calls and where its token comes from.
// It holds no secret, only the paths of the files that do.
type Profile struct {
	// Name is the profile's name in the file, or [DefaultName].
	Name string
	// BaseURL is the API's base URL, without trailing slashes.
	BaseURL string
	// TokenFile is the file holding a static token (a personal access token
	// or a service token). Exactly one of TokenFile, JWT and TokenEnv is set.
	TokenFile string
	// JWT is the OAuth JWT service app that mints this profile's tokens.
	JWT *JWT
	// TokenEnv means the token comes from COZE_API_TOKEN or
	// COZE_API_TOKEN_FILE, read by the caller as it always was. Only
	// [Default] sets it: a profiles file cannot, so that a file says where
	// every one of its tokens is.
	TokenEnv bool
	// Rate is the ceiling, in requests a second, of the profile's adaptive
	// budget. 0 means no ceiling (the budget finds the API's limit), as the
	// CLI's --rate auto does; a profile cannot turn the budget off.
	Rate float64
	// Burst is how many calls may go at once after a quiet spell; 0 takes
	// the budget's default, 1.
	Burst int
	// MaxInflight caps the profile's calls in flight across the fleet; 0
	// means no cap.
	MaxInflight int
}

// JWT is an OAuth JWT service app: it signs a JWT with its private key and
// exchanges it for short-lived access tokens.
type JWT struct {
	// AppID is the app's id (the JWT's iss), digits as written in the file.
	AppID string
	// KeyID is the public key's fingerprint (the JWT header's kid).
	KeyID string
	// PrivateKeyFile is the PEM file (PKCS#8 or PKCS#1) of the private key.
	PrivateKeyFile string
	// Audience is the JWT's aud claim; [Parse] sets it to the host of the
	// profile's base URL (with its port, if it has one, as
	// coze.JWTConfig does) when the file leaves it out.
	Audience string
	// TokenTTL is the lifetime asked for each access token, whole seconds
	// from [MinTokenTTL] to [MaxTokenTTL]; [Parse] sets [DefaultTokenTTL]
	// when the file leaves it out.
	TokenTTL time.Duration
}

// Default returns the profile named [DefaultName] for running without a
// profiles file: the API at baseURL (--coze-base-url, COZE_BASE_URL) and
// the static token of COZE_API_TOKEN or COZE_API_TOKEN_FILE (TokenEnv), which
// the caller reads as it does today, so its checks and messages stay the
// same and no token is held in a Profile. Rate, Burst and MaxInflight are
// zero: the caller sets them from its flags. baseURL is not checked here;
// [NewSet] and [CheckBaseURL] check it.
func Default(baseURL string) Profile {
	return Profile{Name: DefaultName, BaseURL: strings.TrimRight(baseURL, "/"), TokenEnv: true}
}

// String describes the profile on one line. It holds no secret: a profile
// has none, only paths.
func (p Profile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", p.Name, p.BaseURL)
	switch {
	case p.JWT != nil:
		fmt.Fprintf(&b, ", jwt app %s key %s (%s), audience %s, token ttl %s",
			p.JWT.AppID, p.JWT.KeyID, p.JWT.PrivateKeyFile, p.JWT.Audience, p.JWT.TokenTTL)
	case p.TokenFile != "":
		fmt.Fprintf(&b, ", token file %s", p.TokenFile)
	case p.TokenEnv:
		b.WriteString(", token from COZE_API_TOKEN or COZE_API_TOKEN_FILE")
	}
	if p.Rate > 0 {
		fmt.Fprintf(&b, ", rate auto up to %v/s", p.Rate)
	} else {
		b.WriteString(", rate auto")
	}
	if p.Burst > 0 {
		fmt.Fprintf(&b, ", burst %d", p.Burst)
	}
	if p.MaxInflight > 0 {
		fmt.Fprintf(&b, ", max in flight %d", p.MaxInflight)
	}
	return b.String()
}

// Validate checks p against the rules of the file (see the package
// documentation), with TokenEnv as a third token source. It does not fill
// defaults: a JWT needs its Audience and TokenTTL set ([NewSet] sets them).
func (p Profile) Validate() error {
	var errs []error
	add := func(key, problem string) {
		if problem != "" {
			errs = append(errs, fmt.Errorf("profile %s: %s %s", quoteShort(p.Name), key, problem))
		}
	}
	add("name", nameProblem(p.Name))
	add("base_url", baseURLProblem(p.BaseURL))
	sources := 0
	for _, set := range []bool{p.TokenFile != "", p.JWT != nil, p.TokenEnv} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		add("token source", "must be exactly one of token_file, jwt and the environment's token")
	}
	if p.TokenFile != "" {
		add("token_file", pathProblem(p.TokenFile))
	}
	if j := p.JWT; j != nil {
		add("jwt.app_id", appIDProblem(j.AppID))
		add("jwt.key_id", keyIDProblem(j.KeyID))
		add("jwt.private_key_file", pathProblem(j.PrivateKeyFile))
		add("jwt.audience", audienceProblem(j.Audience))
		add("jwt.token_ttl", tokenTTLProblem(j.TokenTTL))
	}
	add("rate", rateProblem(p.Rate))
	add("burst", burstProblem(p.Burst))
	add("max_inflight", inflightProblem(p.MaxInflight))
	return errors.Join(errs...)
}

// CheckFiles checks that the profile's token file or private key file is a
// regular file this process can open for reading. It does not read the
// content; the token source does, when the profile is used.
func (p Profile) CheckFiles() []error {
	var errs []error
	check := func(key, path string) {
		if err := checkReadable(path); err != nil {
			errs = append(errs, fmt.Errorf("profile %s: %s: %w", quoteShort(p.Name), key, err))
		}
	}
	if p.TokenFile != "" {
		check("token_file", p.TokenFile)
	}
	if p.JWT != nil {
		check("jwt.private_key_file", p.JWT.PrivateKeyFile)
	}
	return errs
}

// checkReadable opens path without blocking (a FIFO would otherwise hang
// the caller) and checks that it is a regular file.
func checkReadable(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) //nolint:gosec // the configuration names this file: checking it is the point
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read only: nothing to lose
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return nil
}

// Set is the profiles of one file, by name.
type Set struct {
	byName map[string]Profile
	names  []string // sorted
}

// NewSet returns the set of the given profiles, for example
// NewSet(Default(baseURL)) when no profiles file is given. It fills the
// defaults [Parse] fills (a JWT's Audience and TokenTTL), then refuses
// duplicate names and profiles that [Profile.Validate] refuses, reporting
// every error.
func NewSet(profiles ...Profile) (Set, error) {
	if len(profiles) == 0 {
		return Set{}, errors.New("no profiles")
	}
	s := Set{byName: make(map[string]Profile, len(profiles))}
	var errs []error
	for _, p := range profiles {
		p = withDefaults(p)
		if _, dup := s.byName[p.Name]; dup {
			errs = append(errs, fmt.Errorf("profile %s: defined twice", quoteShort(p.Name)))
			continue
		}
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
		s.byName[p.Name] = p
	}
	if len(errs) > 0 {
		return Set{}, errors.Join(errs...)
	}
	s.names = slices.Sorted(maps.Keys(s.byName))
	return s, nil
}

// withDefaults returns p with its own copy of JWT, the audience and token
// lifetime filled when unset.
func withDefaults(p Profile) Profile {
	p.BaseURL = strings.TrimRight(p.BaseURL, "/")
	if p.JWT == nil {
		return p
	}
	j := *p.JWT
	if j.Audience == "" {
		j.Audience = hostOf(p.BaseURL)
	}
	if j.TokenTTL == 0 {
		j.TokenTTL = DefaultTokenTTL
	}
	p.JWT = &j
	return p
}

// Get returns the profile named name.
func (s Set) Get(name string) (Profile, bool) {
	p, ok := s.byName[name]
	if ok && p.JWT != nil {
		j := *p.JWT // the caller's copy: the set stays as parsed
		p.JWT = &j
	}
	return p, ok
}

// Names returns the profiles' names in byte order.
func (s Set) Names() []string { return slices.Clone(s.names) }

// Len returns how many profiles the set has.
func (s Set) Len() int { return len(s.names) }

// CheckFiles runs [Profile.CheckFiles] on every profile, in name order.
func (s Set) CheckFiles() []error {
	var errs []error
	for _, name := range s.names {
		errs = append(errs, s.byName[name].CheckFiles()...)
	}
	return errs
}

// quoteShort quotes s, cut to 64 bytes, so that a pasted document does not
// flood an error message.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && s[cut]&0xC0 == 0x80 { // not in the middle of a UTF-8 sequence
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}
