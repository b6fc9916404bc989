package sse

import (
	"bytes"
	"fmt"
	"io"
)

const (
	minBuf  = 4096
	keepCap = 64 << 10 // buffers grown past this are dropped once empty
	bom     = "\xEF\xBB\xBF"
)

// line returns the next line of the stream without its line break. The line
// is valid until the next call. It reads more only when no whole line is
// buffered, and returns a line ending in \r at once, without waiting to see
// whether a \n follows: that \n is skipped when it comes.
func (r *Reader) line() ([]byte, error) {
	limit := r.maxSize()
	scanned := 0 // buf[r.r:r.r+scanned] is known to hold no line break
	for {
		if !r.bomDone {
			avail := r.buf[r.r:r.w]
			// Decide once three bytes are in, or they cannot be a BOM, or no
			// more will come.
			if len(avail) >= len(bom) || !bytes.HasPrefix([]byte(bom), avail) || r.err != nil {
				r.bomDone = true
				if bytes.HasPrefix(avail, []byte(bom)) {
					r.r += len(bom)
				}
			}
		}
		if r.bomDone {
			if r.afterCR && r.r < r.w {
				if r.buf[r.r] == '\n' {
					r.r++
				}
				r.afterCR = false
			}
			if i := lineBreak(r.buf[r.r+scanned : r.w]); i >= 0 {
				end := r.r + scanned + i
				line := r.buf[r.r:end]
				r.afterCR = r.buf[end] == '\r'
				r.r = end + 1
				if len(line) > limit {
					return nil, r.tooLong(limit)
				}
				return line, nil
			}
			scanned = r.w - r.r
			if scanned > limit {
				return nil, r.tooLong(limit)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		r.fill(limit)
	}
}

func (r *Reader) tooLong(limit int) error {
	r.fatal = fmt.Errorf("%w: a line is over %d bytes", ErrTooLarge, limit)
	return r.fatal
}

// fill reads once more into buf, making room first. It sets r.err when the
// underlying reader fails or ends.
func (r *Reader) fill(limit int) {
	if r.r == r.w && len(r.buf) > keepCap {
		r.buf, r.r, r.w = nil, 0, 0 // a huge line was parsed; let its memory go
	}
	if r.r > 0 && (r.r == r.w || r.w == len(r.buf)) {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if r.w == len(r.buf) {
		// buf holds part of one line, at most limit bytes of it (line checks
		// that), so growing to limit+1 leaves room to find its end or to learn
		// that it is too long; and at least a BOM must fit to be recognised.
		n := min(max(2*len(r.buf), minBuf), max(limit+1, len(bom)))
		nb := make([]byte, n)
		r.w = copy(nb, r.buf[r.r:r.w])
		r.r = 0
		r.buf = nb
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			r.err = fmt.Errorf("sse: reader returned an invalid count %d", n)
			return
		}
		r.w += n
		if err != nil {
			r.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.err = io.ErrNoProgress
}
