package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/chatworker/worker/contract"
)

// flagSet is a flag.FlagSet built per command from the flags it uses. Its
// flags may also come from environment variables (a flag given on the
// command line wins over its variable) and may come before or after the
// positional arguments; durations take days (7d). Every bad value and every
// failed check is reported at once, one line each.
type flagSet struct {
	*flag.FlagSet
	name     string // the command, as typed: "dlq ls"
	usage    string
	out      io.Writer // where -h prints
	env      map[string]string
	checks   []func() []error
	problems []error
	args     []string
}

func newFlagSet(name, usage string, out io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), name: name, usage: usage, out: out, env: map[string]string{}}
	// The flag package's own report is the full usage after every mistake:
	// parse says what went wrong in one line instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func (fs *flagSet) bind(name, env string) {
	if env != "" {
		fs.env[name] = env
		f := fs.Lookup(name)
		f.Usage += " [$" + env + "]"
	}
}

func (fs *flagSet) String(p *string, name, env, def, usage string) {
	fs.StringVar(p, name, def, usage)
	fs.bind(name, env)
}

func (fs *flagSet) Int(p *int, name, env string, def int, usage string) {
	fs.IntVar(p, name, def, usage)
	fs.bind(name, env)
}

func (fs *flagSet) Float(p *float64, name, env string, def float64, usage string) {
	fs.Float64Var(p, name, def, usage)
	fs.bind(name, env)
}

func (fs *flagSet) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	fs.DurationVar(p, name, def, usage)
	fs.bind(name, env)
}

func (fs *flagSet) Bool(p *bool, name, env string, def bool, usage string) {
	fs.BoolVar(p, name, def, usage)
	fs.bind(name, env)
}

// When registers a --since or --until flag: a time, or how long ago.
func (fs *flagSet) When(p *string, name, usage string) {
	fs.Var(whenValue{p: p, now: time.Now}, name, usage)
}

// check adds a validation that parse runs once the flags and variables are
// read, so its problems are reported with theirs.
func (fs *flagSet) check(f func() []error) { fs.checks = append(fs.checks, f) }

// Args, NArg and Arg are the positional arguments, wherever they were
// among the flags.
func (fs *flagSet) Args() []string { return fs.args }
func (fs *flagSet) NArg() int      { return len(fs.args) }
func (fs *flagSet) Arg(i int) string {
	if i < 0 || i >= len(fs.args) {
		return ""
	}
	return fs.args[i]
}

// errHelp is returned when the user asked for help: usage was printed and
// the command succeeded.
var errHelp = errors.New("help requested")

// syntaxError is a command line that cannot be read past (an unknown flag,
// a flag without its value): reported alone, since what follows it means
// nothing.
type syntaxError struct{ error }

func (e syntaxError) Unwrap() error { return e.error }

// parse reads args, flags and positional arguments in any order ("--" ends
// the flags), fills the flags not given from their variables, and runs the
// checks. A bad value names where it came from.
func (fs *flagSet) parse(args []string) error {
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(*value); !ok {
			f.Value = &value{Value: f.Value, fs: fs, name: f.Name}
		}
	})
	for {
		err := fs.FlagSet.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp()
			return errHelp
		}
		if err != nil {
			return usageError{helpHint{syntaxError{fs.syntax(err)}, fs.name}}
		}
		rest := fs.FlagSet.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			fs.args = append(fs.args, rest...)
			break
		}
		fs.args = append(fs.args, rest[0])
		args = rest[1:]
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	names := make([]string, 0, len(fs.env))
	for name := range fs.env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		env := fs.env[name]
		v, ok := os.LookupEnv(env)
		if given[name] || !ok || v == "" {
			continue
		}
		val := fs.Lookup(name).Value.(*value)
		if err := val.set(v); err != nil {
			shown := ""
			if val.typed() {
				shown = fmt.Sprintf("=%q", v)
			}
			fs.problems = append(fs.problems, fmt.Errorf("environment variable %s%s (for --%s): %v", env, shown, name, err))
		}
	}
	for _, check := range fs.checks {
		fs.problems = append(fs.problems, check()...)
	}
	if len(fs.problems) > 0 {
		return usageError{helpHint{errors.Join(fs.problems...), fs.name}}
	}
	return nil
}

// syntax rewrites the flag package's errors in the words of the help.
func (fs *flagSet) syntax(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if near := closest(name, names); near != "" {
			return fmt.Errorf("unknown flag --%s (did you mean --%s?)", name, near)
		}
		return fmt.Errorf("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s needs a value", name)
	}
	return err
}

// value wraps every flag's value: durations take days, and a bad value is
// kept as a problem of the command line rather than stopping the parse, so
// that all of them are reported at once.
type value struct {
	flag.Value
	fs   *flagSet
	name string
}

func (v *value) Get() any {
	if g, ok := v.Value.(flag.Getter); ok {
		return g.Get()
	}
	return nil
}

func (v *value) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (v *value) Set(s string) error {
	if err := v.set(s); err != nil {
		shown := ""
		if v.typed() {
			shown = fmt.Sprintf(" %q", s)
		}
		v.fs.problems = append(v.fs.problems, fmt.Errorf("--%s%s: %v", v.name, shown, err))
	}
	return nil
}

// typed says the value is a number, a duration or a boolean, which can be
// shown in a message; strings may be credentials and are not.
func (v *value) typed() bool {
	if _, ok := v.Value.(whenValue); ok {
		return true
	}
	g, ok := v.Value.(flag.Getter)
	if !ok {
		return false
	}
	switch g.Get().(type) {
	case time.Duration, int, int64, uint, uint64, float64, bool:
		return true
	}
	return false
}

func (v *value) set(s string) error {
	g, ok := v.Value.(flag.Getter)
	if !ok {
		return v.Value.Set(s)
	}
	// The flag package stores a zero when a number does not parse; the
	// default stays, so that the checks judge only what was given.
	old := v.Value.String()
	err := v.setTyped(g, s)
	if err != nil {
		_ = v.Value.Set(old)
	}
	return err
}

func (v *value) setTyped(g flag.Getter, s string) error {
	switch g.Get().(type) {
	case time.Duration:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		return v.Value.Set(d.String())
	case int, int64, uint, uint64:
		if v.Value.Set(s) != nil {
			return errors.New("want a whole number")
		}
	case float64:
		if v.Value.Set(s) != nil {
			return errors.New("want a number")
		}
	case bool:
		if v.Value.Set(s) != nil {
			return errors.New("want true or false")
		}
	default:
		return v.Value.Set(s)
	}
	return nil
}

// printHelp prints the command's usage and its flags, each with its
// default and variable.
func (fs *flagSet) printHelp() {
	fmt.Fprintf(fs.out, "usage: worker %s\n", fs.usage)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(fs.out, "\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		kind, def := "string", f.DefValue
		if g, ok := f.Value.(flag.Getter); ok {
			switch v := g.Get().(type) {
			case time.Duration:
				kind, def = "duration", formatDuration(v)
			case int, int64, uint, uint64:
				kind = "int"
			case float64:
				kind = "number"
			case bool:
				kind = ""
			}
		}
		line := "  -" + f.Name
		if kind != "" {
			line += " " + kind
		}
		fmt.Fprintf(fs.out, "%s\n    \t%s", line, strings.ReplaceAll(f.Usage, "\n", "\n    \t"))
		if def != "" && def != "false" && def != "0" && def != "0s" {
			fmt.Fprintf(fs.out, " (default %s)", def)
		}
		fmt.Fprintln(fs.out)
	})
}

// usageError is a mistake in the command line: main prints it with a hint.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// helpHint names the command whose help answers a usage error.
type helpHint struct {
	error
	cmd string
}

func (e helpHint) Unwrap() error { return e.error }

// closest is the word in words nearest to w, if one is near enough to be
// a likely typo ("sned" for "send").
func closest(w string, words []string) string {
	best, bestD := "", len(w)/3+2
	for _, c := range words {
		if d := editDistance(w, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbours that turn a into b.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// secret reads a credential from the variable name or the file named by
// name_FILE. Files are for Kubernetes Secrets mounted as volumes.
func secret(name string) (string, error) {
	v := os.Getenv(name)
	file := os.Getenv(name + "_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("both %s and %s_FILE are set: set only one", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		defer clear(b) // the one copy kept is the string returned
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s_FILE names %s, which is empty", name, file)
		}
		return s, nil
	}
	return v, nil
}

// projectFlag is --project (contract v2): the project whose subjects a
// command publishes on or reads. Without it, a command publishes on the v1
// subjects (the default project, or the one --site-token names), as it did
// before projects had names, and a command that reads reads the v1
// subjects and every project's, so that nothing is hidden.
type projectFlag struct{ name string }

// register registers --project; reads says the command reads records
// rather than publishing.
func (p *projectFlag) register(fs *flagSet, reads bool) {
	usage := "publish on this project's subjects (contract v2: " + contract.DefaultPrefix + ".commands.NAME.<type>.<chat>); without it, on the v1 subjects, read by every worker release"
	if reads {
		usage = "only this project's (contract v2) commands, results, dead letters and schedules; without it, every project's and the v1 ones"
	}
	fs.String(&p.name, "project", "WORKER_PROJECT", "", usage)
	fs.check(func() []error {
		if p.name == "" {
			return nil
		}
		if err := contract.CheckProjectName(p.name); err != nil {
			return []error{fmt.Errorf("--project: %v", err)}
		}
		return nil
	})
}

// subjects are n's subjects for the project (v1 ones without it).
func (p projectFlag) subjects(n natsFlags) contract.Subjects { return n.subjects().For(p.name) }
