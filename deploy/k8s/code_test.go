package k8s

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

// codeFacts is what the binary serves and reads, taken from its Go source
// rather than from a list kept by hand, so a renamed variable or route fails
// these tests instead of silently breaking a deployment.
type codeFacts struct {
	env      map[string]bool // environment variables the binary reads
	routes   map[string]bool // HTTP paths registered on a mux
	httpPort string          // port of the --http-addr default
	commands map[string]bool // subcommands accepted by run
	stream   string          // default commands stream (Topology.CommandsStream)
	durable  string          // default durable consumer (Topology.Durable)
}

const repoRoot = "../.."

// readCode parses cmd/worker. It recognises:
//   - fs.String/Int/Duration/Bool/Float(&v, "flag", "ENV", default, usage)
//   - secret("NAME"), which reads NAME and NAME_FILE
//   - mux.Handle/HandleFunc("GET /path", ...)
//   - the case labels of the switch in func run (the subcommands)
//
// The default stream and durable come from consumer.Topology itself.
func readCode(t *testing.T) codeFacts {
	t.Helper()
	topo := consumer.Topology{}.WithDefaults()
	f := codeFacts{env: map[string]bool{}, routes: map[string]bool{}, commands: map[string]bool{},
		stream: topo.CommandsStream, durable: topo.Durable}
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

func (f *codeFacts) collectCall(t *testing.T, call *ast.CallExpr) {
	switch fun := call.Fun.(type) {
	case *ast.Ident:
		switch {
		case fun.Name == "secret" && len(call.Args) == 1:
			if name, ok := stringLit(call.Args[0]); ok {
				f.env[name] = true
				f.env[name+"_FILE"] = true
			}
		}
	case *ast.SelectorExpr:
		recv, ok := fun.X.(*ast.Ident)
		if !ok {
			return
		}
		switch method := fun.Sel.Name; {
		case recv.Name == "fs" && len(call.Args) == 5 && slices.Contains([]string{"String", "Int", "Duration", "Bool", "Float"}, method):
			flag, _ := stringLit(call.Args[1])
			if env, ok := stringLit(call.Args[2]); ok && env != "" {
				f.env[env] = true
			}
			if def, ok := stringLit(call.Args[3]); ok && flag == "http-addr" {
				_, port, err := net.SplitHostPort(def)
				if err != nil {
					t.Fatalf("--http-addr default %q: %v", def, err)
				}
				f.httpPort = port
			}
		case (method == "Handle" || method == "HandleFunc") && len(call.Args) == 2:
			if pattern, ok := stringLit(call.Args[0]); ok {
				// "GET /healthz" or "/healthz": the path is the last field.
				fields := strings.Fields(pattern)
				f.routes[fields[len(fields)-1]] = true
			}
		}
	}
}

func (f *codeFacts) collectCommands(fn *ast.FuncDecl) {
	ast.Inspect(fn, func(n ast.Node) bool {
		if cc, ok := n.(*ast.CaseClause); ok {
			for _, e := range cc.List {
				if s, ok := stringLit(e); ok {
					f.commands[s] = true
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

// TestReadCode guards the parser itself: the names below are the ones the
// contract (docs/contract.md) promises, so if a refactor hides them
// from readCode, this fails here rather than making the manifest checks
// vacuous.
func TestReadCode(t *testing.T) {
	f := readCode(t)
	for _, env := range []string{"NATS_URL", "NATS_CREDS", "CHAT_API_URL", "WORKER_CONCURRENCY", "WORKER_HTTP_ADDR",
		"WORKER_LOG_LEVEL", "GOSQUARED_API_KEY", "GOSQUARED_API_KEY_FILE", "GOSQUARED_SITE_TOKEN_FILE"} {
		if !f.env[env] {
			t.Errorf("environment variable %s not found in cmd/worker", env)
		}
	}
	for _, route := range []string{"/metrics", "/healthz", "/readyz"} {
		if !f.routes[route] {
			t.Errorf("route %s not found in cmd/worker", route)
		}
	}
	for _, cmd := range []string{"run", "provision", "sim"} {
		if !f.commands[cmd] {
			t.Errorf("subcommand %s not found in cmd/worker", cmd)
		}
	}
	if f.httpPort == "" || f.stream == "" || f.durable == "" {
		t.Errorf("http port %q, stream %q, durable %q: want all found", f.httpPort, f.stream, f.durable)
	}
	t.Logf("%d variables, routes %v, port %s, stream %s, durable %s", len(f.env), f.routes, f.httpPort, f.stream, f.durable)
}
