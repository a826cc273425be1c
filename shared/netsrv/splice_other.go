//go:build !linux

package netsrv

import "errors"

// SpliceFrom is only on Linux; elsewhere it sends nothing and returns
// errors.ErrUnsupported.
func (c *Conn) SpliceFrom(pipe int, n int) (int64, error) {
	return 0, errors.ErrUnsupported
}
