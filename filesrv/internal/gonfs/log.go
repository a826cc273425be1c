package gonfs

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	nfs "github.com/willscott/go-nfs"
)

// goNFSLog is where go-nfs's package-wide logger writes: the logger of
// the newest Forwarder. go-nfs has one logger per process, not per server.
var goNFSLog atomic.Pointer[slog.Logger]

func init() {
	goNFSLog.Store(slog.New(slog.DiscardHandler))
	nfs.SetLogger(&logAdapter{})
}

// setLog points go-nfs's log at l (nil: discard).
func setLog(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	goNFSLog.Store(l.With("component", "go-nfs"))
}

// logAdapter is go-nfs's Logger over slog. Its errors are about single
// requests, which filesrv answers anyway, so they are logged at warn;
// Panic and Fatal log and do not end the process.
type logAdapter struct{}

var _ nfs.Logger = (*logAdapter)(nil)

func (*logAdapter) log(level slog.Level, msg string) {
	goNFSLog.Load().Log(context.Background(), level, msg)
}

func (*logAdapter) SetLevel(nfs.LogLevel)                   {}
func (*logAdapter) GetLevel() nfs.LogLevel                  { return nfs.TraceLevel }
func (*logAdapter) ParseLevel(string) (nfs.LogLevel, error) { return nfs.InfoLevel, nil }

func (a *logAdapter) Panic(args ...any) { a.log(slog.LevelError, fmt.Sprint(args...)) }
func (a *logAdapter) Fatal(args ...any) { a.log(slog.LevelError, fmt.Sprint(args...)) }
func (a *logAdapter) Error(args ...any) { a.log(slog.LevelWarn, fmt.Sprint(args...)) }
func (a *logAdapter) Warn(args ...any)  { a.log(slog.LevelWarn, fmt.Sprint(args...)) }
func (a *logAdapter) Info(args ...any)  { a.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (a *logAdapter) Debug(args ...any) { a.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (a *logAdapter) Trace(args ...any) {}
func (a *logAdapter) Print(args ...any) { a.log(slog.LevelDebug, fmt.Sprint(args...)) }

func (a *logAdapter) Panicf(f string, args ...any) { a.log(slog.LevelError, fmt.Sprintf(f, args...)) }
func (a *logAdapter) Fatalf(f string, args ...any) { a.log(slog.LevelError, fmt.Sprintf(f, args...)) }
func (a *logAdapter) Errorf(f string, args ...any) { a.log(slog.LevelWarn, fmt.Sprintf(f, args...)) }
func (a *logAdapter) Warnf(f string, args ...any)  { a.log(slog.LevelWarn, fmt.Sprintf(f, args...)) }
func (a *logAdapter) Infof(f string, args ...any)  { a.log(slog.LevelDebug, fmt.Sprintf(f, args...)) }
func (a *logAdapter) Debugf(f string, args ...any) { a.log(slog.LevelDebug, fmt.Sprintf(f, args...)) }
func (a *logAdapter) Tracef(string, ...any)        {}
func (a *logAdapter) Printf(f string, args ...any) { a.log(slog.LevelDebug, fmt.Sprintf(f, args...)) }
