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
)

// flagSet is a flag.FlagSet whose flags may also come from environment
// variables: a flag given on the command line wins over its variable.
type flagSet struct {
	*flag.FlagSet
	env map[string]string // flag name -> variable
}

func newFlagSet(name, usage string, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string]string{}}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: worker %s\n\n", usage)
		fs.PrintDefaults()
	}
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

// errHelp is returned when the user asked for help: usage was printed and
// the command succeeded.
var errHelp = errors.New("help requested")

// parse parses args, then fills flags not given from their variables. A bad
// value names where it came from.
func (fs *flagSet) parse(args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err}
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
		if err := fs.Set(name, v); err != nil {
			return usageError{fmt.Errorf("environment variable %s=%q: %v", env, v, err)}
		}
	}
	return nil
}

// usageError is a mistake in the command line: main prints it with a hint.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

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
