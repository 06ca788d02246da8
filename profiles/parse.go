package profiles

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes is the largest profiles file read: a file of a thousand
// profiles is well under it, and the bound keeps a wrong path (a log, a
// device) from filling memory.
const MaxFileBytes = 1 << 20

// Error is one broken rule of a profiles file. [Parse] and [Load] return
// every one they find, joined with [errors.Join].
type Error struct {
	// Source names the file, as given to [Parse].
	Source string
	// Line and Column are where the offending key or value starts,
	// 1-based; 0 when the error is about the whole file.
	Line, Column int
	// Path is the key path, such as "profiles.app-cn.jwt.token_ttl"; ""
	// for the whole file. A name that is not a valid profile name is
	// quoted in brackets: profiles["a:b"].
	Path string
	// Rule says what is wrong and what to do. It never holds a secret, a
	// URL or a path from the file.
	Rule string
}

// Error returns "source:line:col: path rule", such as
// `profiles.yaml:9:18: profiles.app-cn.jwt.token_ttl 0s: must be 1s to 23h59m59s (86399s)`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteByte(' ')
	}
	b.WriteString(e.Rule)
	return b.String()
}

// Load reads and parses the profiles file at path; see [Parse]. Anything
// but a regular file is refused without being read.
func Load(path string) (Set, error) {
	// Opened without blocking, so that a FIFO named by mistake is refused
	// below rather than hanging the command.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) //nolint:gosec // the operator names this file: reading it is the point
	if err != nil {
		return Set{}, fmt.Errorf("profiles file: %w", err)
	}
	defer f.Close() //nolint:errcheck // read only: nothing to lose
	fi, err := f.Stat()
	if err != nil {
		return Set{}, fmt.Errorf("profiles file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Set{}, &Error{Source: path, Rule: fmt.Sprintf("is not a regular file (%s)", fi.Mode().Type())}
	}
	return Parse(f, path)
}

// Parse reads a profiles file (described in the package documentation)
// from r; source names it in errors. It returns every broken rule, each an
// [*Error], joined with [errors.Join] and in the order of the file, and no
// profiles unless the whole file is valid.
func Parse(r io.Reader, source string) (Set, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return Set{}, fmt.Errorf("%s: %w", source, err)
	}
	if len(data) > MaxFileBytes {
		return Set{}, &Error{Source: source, Rule: fmt.Sprintf("is larger than %d bytes (1 MiB): refused", MaxFileBytes)}
	}
	root, err := decode(data, source)
	if err != nil {
		return Set{}, err
	}
	p := &parser{source: source}
	profiles := p.file(root)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		return Set{}, p.joined()
	}
	s := Set{byName: make(map[string]Profile, len(profiles))}
	for _, pr := range profiles {
		s.byName[pr.Name] = pr
		s.names = append(s.names, pr.Name)
	}
	slices.Sort(s.names)
	return s, nil
}

// decode returns the root node of the file's one YAML document.
func decode(data []byte, source string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Source: source, Rule: "is empty: it must hold a profiles: mapping"}
		}
		return nil, syntaxError(source, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		e := &Error{Source: source, Line: next.Line, Column: next.Column, Rule: "has more than one YAML document: keep one"}
		if err != nil {
			e = syntaxError(source, err)
		}
		return nil, e
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, &Error{Source: source, Rule: "is empty: it must hold a profiles: mapping"}
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns the YAML parser's "yaml: line N: msg" into an [*Error]
// at line N.
func syntaxError(source string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Source: source, Line: line, Column: 1, Rule: "is not valid YAML: " + m[2]}
	}
	return &Error{Source: source, Rule: "is not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// parser collects the errors of one file.
type parser struct {
	source string
	errs   []*Error
}

func (p *parser) fail(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, &Error{Source: p.source, Line: n.Line, Column: n.Column, Path: path, Rule: fmt.Sprintf(format, args...)})
}

// MaxErrors is how many errors [Parse] reports; a count of the rest
// follows them. A file of garbage would otherwise flood the terminal.
const MaxErrors = 100

// joined returns the errors, at most [MaxErrors] of them and a count of the
// rest.
func (p *parser) joined() error {
	errs := make([]error, 0, min(len(p.errs), MaxErrors+1))
	for _, e := range p.errs[:min(len(p.errs), MaxErrors)] {
		errs = append(errs, e)
	}
	if more := len(p.errs) - MaxErrors; more > 0 {
		errs = append(errs, &Error{Source: p.source, Rule: fmt.Sprintf("has %d more errors, not shown", more)})
	}
	return errors.Join(errs...)
}

// entry is one key and its value in a mapping.
type entry struct {
	key, val *yaml.Node
}

// secretKeys are keys that would put a secret in the file, with the key to
// use instead.
var secretKeys = map[string]string{ //nolint:gosec // key names refused in the file, not credentials
	"token":         "token_file",
	"access_token":  "token_file",
	"api_key":       "token_file",
	"secret":        "token_file",
	"client_secret": "jwt.private_key_file",
	"password":      "token_file",
	"private_key":   "jwt.private_key_file",
}

// mapping returns the entries of n by key, reporting a node that is not a
// mapping, keys that are not plain strings, duplicates, aliases, secrets
// and, when known is not nil, keys not in known. ok is false when n is not
// a mapping.
func (p *parser) mapping(n *yaml.Node, path, what string, known []string) (entries map[string]entry, order []string, ok bool) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "must be a mapping (%s), not %s", what, kindName(n))
		return nil, nil, false
	}
	entries = make(map[string]entry, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.fail(k, path, "has a key that is %s: keys are plain names", kindName(k))
			continue
		}
		kpath := join(path, k.Value)
		if prev, dup := entries[k.Value]; dup {
			p.fail(k, kpath, "is defined twice: first at line %d", prev.key.Line)
			continue
		}
		entries[k.Value] = entry{k, v}
		if v.Kind == yaml.AliasNode {
			p.fail(v, kpath, "is an alias (*%s): aliases are not supported, write the value out", v.Value)
			delete(entries, k.Value)
			continue
		}
		if known == nil {
			order = append(order, k.Value)
			continue
		}
		if use, secret := secretKeys[strings.ToLower(strings.ReplaceAll(k.Value, "-", "_"))]; secret {
			p.fail(k, kpath, "would put a secret in this file: put it in a file and give its path with %s", use)
			delete(entries, k.Value)
			continue
		}
		if !slices.Contains(known, k.Value) {
			p.fail(k, kpath, "is not a known key: use %s", strings.Join(known, ", "))
			delete(entries, k.Value)
			continue
		}
		order = append(order, k.Value)
	}
	return entries, order, true
}

// join appends key to a key path, quoted in brackets unless it is a plain
// name.
func join(path, key string) string {
	if !plainName(key) {
		key = "[" + quoteShort(key) + "]"
	} else if path != "" {
		key = "." + key
	}
	return path + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "empty"
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a floating-point number"
	case "!!bool":
		return "true or false"
	}
	return "a value tagged " + quoteShort(n.ShortTag())
}

var (
	topKeys     = []string{"profiles"}
	profileKeys = []string{"base_url", "token_file", "jwt", "rate", "burst", "max_inflight"}
	jwtKeys     = []string{"app_id", "key_id", "private_key_file", "audience", "token_ttl"}
)

// file checks the root mapping and returns its profiles.
func (p *parser) file(root *yaml.Node) []Profile {
	top, _, ok := p.mapping(root, "", "with the key profiles", topKeys)
	if !ok {
		return nil
	}
	e, found := top["profiles"]
	if !found {
		if len(p.errs) == 0 {
			p.fail(root, "profiles", "is missing: define the profiles under profiles:")
		}
		return nil
	}
	if isNull(e.val) {
		p.fail(e.key, "profiles", "is empty: define at least one profile")
		return nil
	}
	byName, names, ok := p.mapping(e.val, "profiles", "of profile names to profiles", nil)
	if !ok {
		return nil
	}
	if len(e.val.Content) == 0 {
		p.fail(e.val, "profiles", "is empty: define at least one profile")
	}
	var out []Profile
	for _, name := range names {
		out = append(out, p.profile(name, byName[name]))
	}
	return out
}

// profile checks one profile.
func (p *parser) profile(name string, e entry) Profile {
	path := join("profiles", name)
	if !plainName(name) {
		p.fail(e.key, path, "is not a valid profile name: %s", nameRule)
	}
	pr := Profile{Name: name}
	if _, secret := secretKeys[strings.ToLower(name)]; secret && e.val.Kind == yaml.ScalarNode {
		p.fail(e.key, path, "would put a secret in this file: put it in a file and give its path with token_file")
		return pr
	}
	fields, _, ok := p.mapping(e.val, path, "with base_url and token_file or jwt", profileKeys)
	if !ok {
		return pr
	}
	if f, ok := fields["base_url"]; ok {
		pr.BaseURL, _ = p.checkedString(f, join(path, "base_url"), baseURLProblem)
		pr.BaseURL = strings.TrimRight(pr.BaseURL, "/")
	} else {
		p.fail(e.key, join(path, "base_url"), "is missing: give the API's URL, such as https://api.coze.cn")
	}
	tf, hasFile := fields["token_file"]
	jf, hasJWT := fields["jwt"]
	switch {
	case hasFile && hasJWT:
		p.fail(e.key, path, "has both token_file (line %d) and jwt (line %d): keep one", tf.key.Line, jf.key.Line)
	case !hasFile && !hasJWT:
		p.fail(e.key, path, "has neither token_file nor jwt: give the file of a static token, or a jwt app")
	}
	if hasFile {
		pr.TokenFile, _ = p.checkedString(tf, join(path, "token_file"), pathProblem)
	}
	if hasJWT {
		pr.JWT = p.jwt(jf, join(path, "jwt"), hostOf(pr.BaseURL))
	}
	if f, ok := fields["rate"]; ok {
		pr.Rate = p.rate(f, join(path, "rate"))
	}
	if f, ok := fields["burst"]; ok {
		pr.Burst = p.integer(f, join(path, "burst"), burstProblem)
	}
	if f, ok := fields["max_inflight"]; ok {
		pr.MaxInflight = p.integer(f, join(path, "max_inflight"), inflightProblem)
	}
	return pr
}

// jwt checks a profile's jwt mapping; host is the default audience.
func (p *parser) jwt(e entry, path, host string) *JWT {
	fields, _, ok := p.mapping(e.val, path, "with app_id, key_id and private_key_file", jwtKeys)
	if !ok {
		return nil
	}
	j := &JWT{Audience: host, TokenTTL: DefaultTokenTTL}
	for _, key := range []string{"app_id", "key_id", "private_key_file"} {
		if _, ok := fields[key]; !ok {
			p.fail(e.key, join(path, key), "is missing")
		}
	}
	if f, ok := fields["app_id"]; ok {
		j.AppID = p.appID(f, join(path, "app_id"))
	}
	if f, ok := fields["key_id"]; ok {
		j.KeyID, _ = p.checkedString(f, join(path, "key_id"), keyIDProblem)
	}
	if f, ok := fields["private_key_file"]; ok {
		j.PrivateKeyFile, _ = p.checkedString(f, join(path, "private_key_file"), pathProblem)
	}
	if f, ok := fields["audience"]; ok {
		j.Audience, _ = p.checkedString(f, join(path, "audience"), audienceProblem)
	}
	if f, ok := fields["token_ttl"]; ok {
		j.TokenTTL = p.tokenTTL(f, join(path, "token_ttl"))
	}
	return j
}

// checkedString reads a string value and checks it with problem.
func (p *parser) checkedString(e entry, path string, problem func(string) string) (string, bool) {
	v := e.val
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		p.fail(v, path, "must be a string, not %s", kindName(v))
		return "", false
	}
	if msg := problem(v.Value); msg != "" {
		p.fail(v, path, "%s", msg)
		return "", false
	}
	return v.Value, true
}

// appID reads an app id written as a string or as a YAML integer, keeping
// its digits as written (YAML would turn a long one into a float).
func (p *parser) appID(e entry, path string) string {
	v := e.val
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!float":
		p.fail(v, path, "%s is read as a floating-point number, which loses digits: write the app id in quotes, such as \"1127900106117\"", quoteShort(v.Value))
		return ""
	case v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" && v.ShortTag() != "!!int":
		p.fail(v, path, "must be the app's id in digits, not %s", kindName(v))
		return ""
	}
	if msg := appIDProblem(v.Value); msg != "" {
		p.fail(v, path, "%s", msg)
		return ""
	}
	return v.Value
}

func (p *parser) tokenTTL(e entry, path string) time.Duration {
	v := e.val
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		p.fail(v, path, "must be a duration such as 15m or 900s, not %s", kindName(v))
		return 0
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		p.fail(v, path, "%s: must be a duration such as 15m or 900s", quoteShort(v.Value))
		return 0
	}
	if msg := tokenTTLProblem(d); msg != "" {
		p.fail(v, path, "%s", msg)
		return 0
	}
	return d
}

func (p *parser) rate(e entry, path string) float64 {
	v := e.val
	var r float64
	if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!int" && v.ShortTag() != "!!float") || v.Decode(&r) != nil ||
		math.IsNaN(r) || math.IsInf(r, 0) {
		p.fail(v, path, "must be a number of requests a second, not %s", describe(v))
		return 0
	}
	if msg := rateProblem(r); msg != "" {
		p.fail(v, path, "%s", msg)
		return 0
	}
	return r
}

// integer reads a whole number and checks it with problem.
func (p *parser) integer(e entry, path string, problem func(int) string) int {
	v := e.val
	var n int64
	// YAML reads digits beyond uint64 as a float: still a whole number,
	// out of range below.
	whole := v.ShortTag() == "!!int" || v.ShortTag() == "!!float" && strings.IndexFunc(strings.TrimLeft(v.Value, "+-"), notDigit) < 0
	if v.Kind != yaml.ScalarNode || !whole {
		p.fail(v, path, "must be a whole number, not %s", describe(v))
		return 0
	}
	if v.Decode(&n) != nil || n < math.MinInt32 || n > math.MaxInt32 {
		// Out of int64 (or int on 32 bits): state the rule with the digits
		// as written, taking its wording from problem's answer for -1.
		p.fail(v, path, "%s: %s", quoteShort(v.Value), strings.TrimPrefix(problem(-1), "-1: "))
		return 0
	}
	if msg := problem(int(n)); msg != "" {
		p.fail(v, path, "%s", msg)
		return 0
	}
	return int(n)
}

// describe names a value that is not the number expected: a number is
// quoted, anything else (which may be a secret pasted in the wrong place)
// is named by its kind.
func describe(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kindName(n)
	}
	// YAML leaves a number too large for a float64 (1e400) a string.
	_, err := strconv.ParseFloat(n.Value, 64)
	if t := n.ShortTag(); t == "!!int" || t == "!!float" || errors.Is(err, strconv.ErrRange) {
		return quoteShort(n.Value)
	}
	return kindName(n)
}
