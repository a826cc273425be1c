package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/OpenPrinting/goipp"
)

// The null server answers every Print-Job with successful-ok and keeps
// nothing: what a client can submit to it is the most that client can
// show of any server on this box, the ceiling of a ratio measured with it.

// nullServer is an IPP server in this process that stores nothing.
type nullServer struct {
	srv *http.Server
}

// startNullServer starts a null server on a loopback port.
func startNullServer() (*target, *nullServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("null server: %w", err)
	}
	n := &nullServer{srv: &http.Server{Handler: http.HandlerFunc(nullIPP), ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("null server: %v", err)
		}
	}()
	t := &target{name: "null server", host: ln.Addr().String(), path: "/ipp/print"}
	t.uri = "ipp://" + t.host + t.path
	return t, n, nil
}

// stop closes the null server.
func (n *nullServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
}

// nullIPP decodes the request, drains the document and answers with the
// attributes a Print-Job reply carries.
func nullIPP(w http.ResponseWriter, r *http.Request) {
	var req goipp.Message
	if err := req.Decode(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	resp := goipp.NewResponse(req.Version, goipp.StatusOk, req.RequestID)
	resp.Operation.Add(goipp.MakeAttribute("attributes-charset", goipp.TagCharset, goipp.String("utf-8")))
	resp.Operation.Add(goipp.MakeAttribute("attributes-natural-language", goipp.TagLanguage, goipp.String("en")))
	if goipp.Op(req.Code) == goipp.OpPrintJob {
		resp.Job.Add(goipp.MakeAttribute("job-id", goipp.TagInteger, goipp.Integer(1)))
		resp.Job.Add(goipp.MakeAttribute("job-uri", goipp.TagURI, goipp.String("ipp://"+r.Host+"/jobs/1")))
		resp.Job.Add(goipp.MakeAttribute("job-state", goipp.TagEnum, goipp.Integer(3)))
		resp.Job.Add(goipp.MakeAttribute("job-state-reasons", goipp.TagKeyword, goipp.String("none")))
	}
	b, err := resp.EncodeBytes()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ipp")
	_, _ = w.Write(b)
}

// measureCeiling runs fn against the null server rounds times and records
// the median accepted rate as the row's ceiling.
func measureCeiling(ctx context.Context, ro *row, t *target, rounds int, fn func(*target) (counts, time.Duration, error)) error {
	for range rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		cn, wall, err := fn(t)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", ro.name, t.name, err)
		}
		ru := run{counts: cn, wall: wall}
		if cn.failed > 0 {
			return fmt.Errorf("%s, %s: %d failed: %s", ro.name, t.name, cn.failed, cn.firstErr)
		}
		ro.ceiling = append(ro.ceiling, ru.rate())
		logf("%-50s %-14s %8.1f accepted/s (client ceiling)", ro.name, t.name, ru.rate())
	}
	return nil
}
