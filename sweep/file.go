package sweep

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // time_zone works in images without /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

// MaxFileBytes is the largest sweeps file read.
const MaxFileBytes = 1 << 20

// Scheduled is a sweep of the sweeps file: its spec and when it runs.
type Scheduled struct {
	Spec
	// Schedule is the cron spec as written: five fields (minute, hour,
	// day of month, month, day of week), or six with seconds first, or a
	// descriptor such as @daily; optionally after CRON_TZ=Zone.
	Schedule string
	// TimeZone is the file's time_zone, "" when it gave none (the
	// schedule's own CRON_TZ, else UTC).
	TimeZone string

	cron cron.Schedule
	// interval is the longest gap between two ticks over the next
	// intervalTicks.
	interval time.Duration
	// profileAt is where the file names the profile, for CheckProfiles.
	profileAt position
}

// Next returns the first tick after t.
func (s Scheduled) Next(t time.Time) time.Time { return s.cron.Next(t) }

// Interval is the longest time between two ticks, measured over the next
// ticks when the file was read: what "twice its interval" of the alert on
// a sweep that stopped succeeding is counted in.
func (s Scheduled) Interval() time.Duration { return s.interval }

// NewScheduled returns spec run on schedule (the syntax of the file's
// schedule key) in timeZone ("" for the schedule's own CRON_TZ, else UTC).
func NewScheduled(spec Spec, schedule, timeZone string) (Scheduled, error) {
	if err := spec.Validate(); err != nil {
		return Scheduled{}, err
	}
	if spec.Name == "" {
		return Scheduled{}, fieldError("name", "is required for a scheduled sweep")
	}
	c, err := parseSchedule(schedule, timeZone)
	if err != nil {
		return Scheduled{}, err
	}
	return Scheduled{Spec: spec, Schedule: schedule, TimeZone: timeZone, cron: c, interval: interval(c, time.Now())}, nil
}

// cronParser reads the standard five fields, an optional seconds field
// before them, and descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseSchedule parses a schedule; the error is a *FieldError of
// schedule or time_zone.
func parseSchedule(schedule, timeZone string) (cron.Schedule, error) {
	text := strings.TrimSpace(schedule)
	hasTZ := strings.HasPrefix(text, "CRON_TZ=") || strings.HasPrefix(text, "TZ=")
	if timeZone != "" {
		if hasTZ {
			return nil, fieldError("time_zone", "the schedule has its own CRON_TZ: give the zone in one place")
		}
		if _, err := time.LoadLocation(timeZone); err != nil || timeZone == "Local" {
			return nil, fieldError("time_zone", "%q: not a time zone of the IANA database, such as Europe/Berlin or UTC", timeZone)
		}
		text = "CRON_TZ=" + timeZone + " " + text
	}
	c, err := cronParser.Parse(text)
	if err != nil {
		return nil, fieldError("schedule", "%q: %v (five fields: minute hour day-of-month month day-of-week, such as \"0 3 * * *\")", schedule, err)
	}
	if _, relative := c.(cron.ConstantDelaySchedule); relative {
		return nil, fieldError("schedule", "%q: @every counts from when each worker starts, so workers would not agree on the ticks; "+
			"use cron fields, such as \"*/30 * * * *\"", schedule)
	}
	if c.Next(time.Now()).IsZero() {
		return nil, fieldError("schedule", "%q: never fires", schedule)
	}
	return c, nil
}

// intervalTicks is how many ticks the interval is measured over: enough
// to see a weekend in a weekdays-only schedule.
const intervalTicks = 100

// interval is the longest gap between two of c's ticks after from.
func interval(c cron.Schedule, from time.Time) time.Duration {
	var longest time.Duration
	t := c.Next(from)
	for range intervalTicks {
		next := c.Next(t)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(t))
		t = next
	}
	return longest
}

// FileError is one broken rule of a sweeps file. [Parse] returns every one
// it finds, joined with errors.Join.
type FileError struct {
	// Source names the file.
	Source string
	// Line and Column are where the offending key or value starts; 0 for
	// the whole file.
	Line, Column int
	// Path is the key path, such as "sweeps.nightly.schedule".
	Path string
	Rule string
}

// Error returns "source:line:col: path rule".
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + " ")
	}
	b.WriteString(e.Rule)
	return b.String()
}

// Load reads and parses the sweeps file at path (see [Parse]). Anything
// but a regular file is refused without being read.
func Load(path string) ([]Scheduled, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) //nolint:gosec // the operator names this file: reading it is the point
	if err != nil {
		return nil, fmt.Errorf("sweeps file: %w", err)
	}
	defer f.Close() //nolint:errcheck // read only
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sweeps file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &FileError{Source: path, Rule: fmt.Sprintf("is not a regular file (%s)", fi.Mode().Type())}
	}
	return Parse(f, path)
}

// Parse reads a sweeps file from r; source names it in errors. The file
// is YAML, as the profiles file is: a mapping with one key, sweeps,
// mapping each sweep's name to its settings:
//
//	sweeps:
//	  support-90d:
//	    schedule: "0 3 * * *"          # cron: minute hour day-of-month month day-of-week
//	    time_zone: Europe/Berlin       # optional; default UTC (or the schedule's CRON_TZ=)
//	    profile: support-bot           # optional; default the workers' default profile
//	    bot_ids: ["7379996104700000001", "7379996104700000002"]
//	    connector_ids: ["1024", "999"] # optional; default ["1024"] (API)
//	    older_than: 2160h              # a Go duration: 90 days
//	    by: created                    # optional: created (default) or updated
//	    meta: {tier: free}             # optional: every KEY: VALUE must match meta_data
//	    queue: retention               # optional; default "default"
//	    note: retention policy R-7     # optional, kept with each run's batch
//	    due_in: 24h                    # optional; default 30 days
//
// Every broken rule is reported, each with its line, column and key path
// (an unknown key, a bad schedule or duration, a sweep defined twice), and
// no sweep is returned unless the whole file is valid.
func Parse(r io.Reader, source string) ([]Scheduled, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(data) > MaxFileBytes {
		return nil, &FileError{Source: source, Rule: fmt.Sprintf("is larger than %d bytes (1 MiB): refused", MaxFileBytes)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FileError{Source: source, Rule: "is empty: it must hold a sweeps: mapping"}
		}
		return nil, &FileError{Source: source, Rule: "is not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, &FileError{Source: source, Rule: "has more than one YAML document, or is not valid YAML: keep one"}
	}
	if len(doc.Content) == 0 {
		return nil, &FileError{Source: source, Rule: "is empty: it must hold a sweeps: mapping"}
	}
	p := &parser{source: source}
	out := p.file(doc.Content[0])
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b error) int {
			var ea, eb *FileError // fail only appends *FileError
			if !errors.As(a, &ea) || !errors.As(b, &eb) {
				return 0
			}
			return cmp.Or(cmp.Compare(ea.Line, eb.Line), cmp.Compare(ea.Column, eb.Column))
		})
		return nil, errors.Join(p.errs...)
	}
	return out, nil
}

// CheckProfiles reports each sweep whose profile is not one of known (the
// profiles a worker acts as), with the line that names it.
func CheckProfiles(sweeps []Scheduled, known []string) error {
	var errs []error
	for _, s := range sweeps {
		profile := cmp.Or(s.Profile, "default")
		if !slices.Contains(known, profile) {
			at := s.profileAt
			errs = append(errs, &FileError{Source: at.source, Line: at.line, Column: at.column, Path: join(join("sweeps", s.Name), "profile"),
				Rule: fmt.Sprintf("%s: not a profile of this worker (it has: %s)", profile, strings.Join(known, ", "))})
		}
	}
	return errors.Join(errs...)
}

// position is where a node is in a file.
type position struct {
	source       string
	line, column int
}

// parser collects the errors of one file.
type parser struct {
	source string
	errs   []error
}

func (p *parser) fail(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, &FileError{Source: p.source, Line: n.Line, Column: n.Column, Path: path, Rule: fmt.Sprintf(format, args...)})
}

// sweepKeys are the keys of a sweep.
var sweepKeys = []string{"schedule", "time_zone", "profile", "bot_ids", "connector_ids", "older_than", "by", "meta", "queue", "note", "due_in"}

// entry is a key and its value.
type entry struct{ key, val *yaml.Node }

// mapping returns n's entries by key in order, reporting what is not a
// mapping, keys that are not plain strings, keys defined twice, aliases,
// and, when known is set, keys not in it.
func (p *parser) mapping(n *yaml.Node, path string, known []string) (map[string]entry, []string, bool) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "must be a mapping, not %s", kindName(n))
		return nil, nil, false
	}
	entries := map[string]entry{}
	var order []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kpath := join(path, k.Value)
		switch prev, dup := entries[k.Value]; {
		case k.Kind != yaml.ScalarNode:
			p.fail(k, path, "has a key that is %s: keys are plain names", kindName(k))
		case dup:
			p.fail(k, kpath, "is defined twice: first at line %d", prev.key.Line)
		case v.Kind == yaml.AliasNode:
			p.fail(v, kpath, "is an alias: aliases are not supported, write the value out")
		case known != nil && !slices.Contains(known, k.Value):
			p.fail(k, kpath, "is not a known key: use %s", strings.Join(known, ", "))
		default:
			entries[k.Value] = entry{k, v}
			order = append(order, k.Value)
		}
	}
	return entries, order, true
}

// join appends key to a key path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	if ValidateName(key) != nil {
		return fmt.Sprintf("%s[%.40q]", path, key)
	}
	return path + "." + key
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
	return "a value tagged " + n.ShortTag()
}

// file checks the root mapping and returns its sweeps.
func (p *parser) file(root *yaml.Node) []Scheduled {
	top, _, ok := p.mapping(root, "", []string{"sweeps"})
	if !ok {
		return nil
	}
	e, found := top["sweeps"]
	switch {
	case !found:
		if len(p.errs) == 0 {
			p.fail(root, "sweeps", "is missing: define the sweeps under sweeps:")
		}
		return nil
	case e.val.Kind == yaml.ScalarNode && e.val.ShortTag() == "!!null", e.val.Kind == yaml.MappingNode && len(e.val.Content) == 0:
		p.fail(e.key, "sweeps", "is empty: define at least one sweep")
		return nil
	}
	byName, names, ok := p.mapping(e.val, "sweeps", nil)
	if !ok {
		return nil
	}
	var out []Scheduled
	for _, name := range names {
		if s, ok := p.sweep(name, byName[name]); ok {
			out = append(out, s)
		}
	}
	return out
}

// sweep checks one sweep.
func (p *parser) sweep(name string, e entry) (Scheduled, bool) {
	path := join("sweeps", name)
	before := len(p.errs)
	if err := ValidateName(name); err != nil {
		p.fail(e.key, path, "is not a valid sweep name: %v", err)
	}
	fields, _, ok := p.mapping(e.val, path, sweepKeys)
	if !ok {
		return Scheduled{}, false
	}
	for _, key := range []string{"schedule", "bot_ids", "older_than"} {
		if _, ok := fields[key]; !ok {
			p.fail(e.key, join(path, key), "is missing")
		}
	}
	s := Scheduled{Spec: Spec{Name: name}, profileAt: position{p.source, e.key.Line, e.key.Column}}
	str := func(key string) string {
		f, ok := fields[key]
		if !ok {
			return ""
		}
		v, _ := p.str(f, join(path, key))
		return v
	}
	s.Schedule, s.TimeZone = str("schedule"), str("time_zone")
	s.Profile, s.Queue, s.Note, s.By = str("profile"), str("queue"), str("note"), By(str("by"))
	if f, ok := fields["profile"]; ok {
		s.profileAt = position{p.source, f.val.Line, f.val.Column}
	}
	if f, ok := fields["bot_ids"]; ok {
		s.BotIDs = p.ids(f, join(path, "bot_ids"))
	}
	if f, ok := fields["connector_ids"]; ok {
		s.ConnectorIDs = p.ids(f, join(path, "connector_ids"))
	}
	if f, ok := fields["older_than"]; ok {
		s.OlderThan = p.duration(f, join(path, "older_than"))
	}
	if f, ok := fields["due_in"]; ok {
		s.DueIn = p.duration(f, join(path, "due_in"))
	}
	if f, ok := fields["meta"]; ok {
		s.Meta = p.meta(f, join(path, "meta"))
	}
	if len(p.errs) > before {
		return Scheduled{}, false
	}
	// Each value has its form; the spec's rules and the schedule's are
	// checked as a whole, each error at the key it names.
	built, err := NewScheduled(s.Spec, s.Schedule, s.TimeZone)
	var fe *FieldError
	if errors.As(err, &fe) {
		at := e.key
		if f, ok := fields[fe.Field]; ok {
			at = f.val
		}
		p.fail(at, join(path, fe.Field), "%v", fe.Err)
		return Scheduled{}, false
	}
	built.profileAt = s.profileAt
	return built, err == nil
}

// str reads a string value.
func (p *parser) str(e entry, path string) (string, bool) {
	if e.val.Kind != yaml.ScalarNode || e.val.ShortTag() != "!!str" {
		p.fail(e.val, path, "must be a string, not %s (quote it)", kindName(e.val))
		return "", false
	}
	return e.val.Value, true
}

// ids reads a list of ids, written as strings or integers; the digits are
// kept as written (YAML would turn a long one into a float).
func (p *parser) ids(e entry, path string) []string {
	if e.val.Kind != yaml.SequenceNode {
		p.fail(e.val, path, "must be a list of ids, such as [\"7379996104700000001\"], not %s", kindName(e.val))
		return nil
	}
	var out []string
	for _, n := range e.val.Content {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" && n.ShortTag() != "!!int" {
			p.fail(n, path, "holds %s: write each id in digits, in quotes", kindName(n))
			continue
		}
		out = append(out, n.Value)
	}
	return out
}

// duration reads a Go duration.
func (p *parser) duration(e entry, path string) time.Duration {
	v, ok := p.str(e, path)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.fail(e.val, path, "%.40q: not a duration such as 2160h (90 days) or 30m", v)
		return 0
	}
	return d
}

// meta reads the meta filter: a mapping of keys to values, each a string
// or a number as written.
func (p *parser) meta(e entry, path string) map[string]string {
	fields, order, ok := p.mapping(e.val, path, nil)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(order))
	for _, k := range order {
		v := fields[k].val
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" && v.ShortTag() != "!!int" {
			p.fail(v, join(path, k), "must be a string, not %s (quote it)", kindName(v))
			continue
		}
		out[k] = v.Value
	}
	return out
}
