package consumer

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// cmdLog writes lines about one command, each carrying its id, type and
// chat token. Unlike zap's With it encodes nothing until a line is written,
// which on the hot path (successes log at debug) is usually never.
type cmdLog struct {
	base   *zap.Logger
	fields []zap.Field
}

func (l *cmdLog) with(f ...zap.Field) { l.fields = append(l.fields, f...) }

func (l *cmdLog) at(level zapcore.Level, msg string, f []zap.Field) {
	if ce := l.base.Check(level, msg); ce != nil {
		ce.Write(append(l.fields[:len(l.fields):len(l.fields)], f...)...)
	}
}

func (l *cmdLog) Debug(msg string, f ...zap.Field) { l.at(zapcore.DebugLevel, msg, f) }
func (l *cmdLog) Info(msg string, f ...zap.Field)  { l.at(zapcore.InfoLevel, msg, f) }
func (l *cmdLog) Warn(msg string, f ...zap.Field)  { l.at(zapcore.WarnLevel, msg, f) }
func (l *cmdLog) Error(msg string, f ...zap.Field) { l.at(zapcore.ErrorLevel, msg, f) }
