package sse

import "unicode/utf8"

// appendText appends src to dst as the Encoding Standard's UTF-8 decoder
// reads it, which is how the standard says an event stream is decoded: each
// maximal ill-formed subsequence becomes one U+FFFD. Valid input, the usual
// case, is copied as is.
//
// Decoding the values of each line apart is the same as decoding the whole
// stream: line breaks and colons are ASCII, and the decoder never takes an
// ASCII byte into an ill-formed sequence.
func appendText(dst, src []byte) []byte {
	if utf8.Valid(src) {
		return append(dst, src...)
	}
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\uFFFD"...)
			i += illFormed(src[i:])
			continue
		}
		dst = append(dst, src[i:i+n]...)
		i += n
	}
	return dst
}

// illFormed returns the length of the maximal ill-formed subsequence that b,
// which does not start with a valid UTF-8 sequence, starts with: the longest
// prefix that could still begin a valid sequence, or 1 if there is none.
// The byte ranges are those of the Encoding Standard's UTF-8 decoder
// (Unicode table 3-7): they exclude overlongs, surrogates and code points
// above U+10FFFF.
func illFormed(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var need int
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case 0xF1 <= c && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for n <= need && n < len(b) && lo <= b[n] && b[n] <= hi {
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}
