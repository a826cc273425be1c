package docformat

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

// pdfTimeout bounds pdfcpu's parse of a hostile file.
const pdfTimeout = 10 * time.Second

// disablePDFConfig keeps pdfcpu from creating its config folder in the
// user's home on first use: the spool runs as a daemon.
var disablePDFConfig sync.Once

// pdfcpuPages reads the cross-reference table and the page tree's /Count
// with pdfcpu in relaxed mode, without validating the whole document.
func pdfcpuPages(rs io.ReadSeeker) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, fmt.Errorf("pdfcpu panic: %v", p)
		}
	}()
	disablePDFConfig.Do(api.DisableConfigDir)
	conf := model.NewDefaultConfiguration()
	conf.ValidationMode = model.ValidationRelaxed
	conf.Limits.MaxStreamBytes = pdfcpuMax
	conf.Limits.MaxDecodeBytes = 4 * pdfcpuMax
	conf.Limits.MaxObjectStreamFirst = 1 << 20
	conf.Limits.MaxObjectCount = 1_000_000
	conf.Limits.MaxXRefEntries = 1_000_000
	ctx, cancel := context.WithTimeout(context.Background(), pdfTimeout)
	defer cancel()
	pctx, err := pdfcpu.ReadWithContext(ctx, rs, conf)
	if err != nil {
		return 0, fmt.Errorf("pdfcpu read: %w", err)
	}
	if err := pctx.EnsurePageCount(); err != nil {
		return 0, fmt.Errorf("pdfcpu page count: %w", err)
	}
	if pctx.PageCount < 0 {
		return 0, fmt.Errorf("pdfcpu: negative page count %d", pctx.PageCount)
	}
	return pctx.PageCount, nil
}
