package k8stest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chatworker/worker/consumer"
)

// CodeFacts is what the binary serves and reads, taken from its Go source
// rather than from a list kept by hand, so a renamed variable or route fails
// these tests instead of silently breaking a deployment.
type CodeFacts struct {
	Env      map[string]bool // environment variables the binary reads
	Routes   map[string]bool // HTTP paths registered on a mux
	HTTPPort string          // port of the --http-addr default
	Commands map[string]bool // subcommands accepted by run
	Stream   string          // default commands stream (Topology.CommandsStream)
	Durable  string          // default durable consumer (Topology.Durable)
}

// ReadCode parses cmd/worker under repoRoot (the repository's root). It recognises:
//   - fs.String/Int/Duration/Bool/Float(&v, "flag", "ENV", default, usage)
//   - secret("NAME"), which reads NAME and NAME_FILE
//   - os.Getenv("NAME") and os.LookupEnv("NAME") (GOSQUARED_PROJECTS_FILE)
//   - mux.Handle/HandleFunc("GET /path", ...)
//   - the case labels of the switch in func run (the subcommands)
//
// The default stream and durable come from consumer.Topology itself.
func ReadCode(t testing.TB, repoRoot string) CodeFacts {
	t.Helper()
	topo := consumer.Topology{}.WithDefaults()
	f := CodeFacts{Env: map[string]bool{}, Routes: map[string]bool{}, Commands: map[string]bool{},
		Stream: topo.CommandsStream, Durable: topo.Durable}
	files, err := filepath.Glob(filepath.Join(repoRoot, "cmd/worker/*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Name.Name == "run" && n.Recv == nil {
					f.collectCommands(n)
				}
			case *ast.CallExpr:
				f.collectCall(t, n)
			}
			return true
		})
	}
	return f
}

func (f *CodeFacts) collectCall(t testing.TB, call *ast.CallExpr) {
	switch fun := call.Fun.(type) {
	case *ast.Ident:
		switch {
		case fun.Name == "secret" && len(call.Args) == 1:
			if name, ok := stringLit(call.Args[0]); ok {
				f.Env[name] = true
				f.Env[name+"_FILE"] = true
			}
		}
	case *ast.SelectorExpr:
		recv, ok := fun.X.(*ast.Ident)
		if !ok {
			return
		}
		switch method := fun.Sel.Name; {
		case recv.Name == "os" && (method == "Getenv" || method == "LookupEnv") && len(call.Args) == 1:
			if name, ok := stringLit(call.Args[0]); ok {
				f.Env[name] = true
			}
		case recv.Name == "fs" && len(call.Args) == 5 && slices.Contains([]string{"String", "Int", "Duration", "Bool", "Float"}, method):
			flag, _ := stringLit(call.Args[1])
			if env, ok := stringLit(call.Args[2]); ok && env != "" {
				f.Env[env] = true
			}
			if def, ok := stringLit(call.Args[3]); ok && flag == "http-addr" {
				_, port, err := net.SplitHostPort(def)
				if err != nil {
					t.Fatalf("--http-addr default %q: %v", def, err)
				}
				f.HTTPPort = port
			}
		case (method == "Handle" || method == "HandleFunc") && len(call.Args) == 2:
			if pattern, ok := stringLit(call.Args[0]); ok {
				// "GET /healthz" or "/healthz": the path is the last field.
				fields := strings.Fields(pattern)
				f.Routes[fields[len(fields)-1]] = true
			}
		}
	}
}

func (f *CodeFacts) collectCommands(fn *ast.FuncDecl) {
	ast.Inspect(fn, func(n ast.Node) bool {
		if cc, ok := n.(*ast.CaseClause); ok {
			for _, e := range cc.List {
				if s, ok := stringLit(e); ok {
					f.Commands[s] = true
				}
			}
		}
		return true
	})
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
