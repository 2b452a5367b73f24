package main

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flagSet) {
	fs.String(&l.level, "log-level", "WORKER_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	fs.String(&l.format, "log-format", "WORKER_LOG_FORMAT", "auto", "log format: json, console, or auto (console on a terminal, JSON otherwise)")
	fs.check(func() []error {
		if _, err := l.logger(io.Discard); err != nil {
			return []error{err}
		}
		return nil
	})
}

// logger builds the zap logger: JSON for machines, readable lines on a
// terminal. Log lines never carry credentials: nothing that holds one is
// ever passed to the logger.
func (l *logFlags) logger(w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(l.level)
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)}
	}
	format := l.format
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, usageError{fmt.Errorf("--log-format %q: want json, console or auto", l.format)}
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}
