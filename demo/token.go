package demo

import (
	"unicode"
	"unicode/utf8"
)

// The tokenizer cuts text into pieces shaped roughly like an LLM's tokens, so
// that a stream of them stresses a client the way a real model does: words
// carry their leading space, newlines and punctuation stand alone, long words
// and numbers break into sub-word pieces, and every CJK character is a piece
// of its own. It never splits a rune, and keeps combining marks, variation
// selectors and zero-width-joined emoji with the rune before them, so every
// piece of valid UTF-8 text is valid UTF-8. Concatenating the pieces gives the
// text back exactly.

const (
	maxWordRunes  = 10 // a longer word is cut into pieces of this many runes
	maxDigitRunes = 3  // numbers go in groups of three digits, as in GPT tokenizers
	maxPunctRun   = 3  // "```", "**" and "..." are one piece each
)

// nextToken returns the length in bytes of the first token of s, which must
// not be empty.
func nextToken(s string) int {
	switch c := s[0]; c {
	case '\n':
		return 1
	case '\r':
		if len(s) > 1 && s[1] == '\n' {
			return 2
		}
		return 1
	case ' ', '\t':
		j := 1
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j == len(s) || s[j] == '\n' || s[j] == '\r' || s[j-1] != ' ' {
			return j // trailing blanks, or blanks not ending in a space
		}
		if j > 1 {
			return j - 1 // leave one space to lead the next word
		}
		return 1 + unit(s[1:])
	}
	return unit(s)
}

// unit returns the length of the word, number, CJK character or punctuation
// run that s starts with, with any marks that belong to its last rune.
func unit(s string) int {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return 1 // a stray byte: nothing to keep together
	}
	switch {
	case isCJK(r):
		// n is already the whole character.
	case unicode.IsLetter(r):
		n += marks(s[n:])
		for runes := 1; n < len(s) && runes < maxWordRunes; runes++ {
			r, size := utf8.DecodeRuneInString(s[n:])
			if !unicode.IsLetter(r) || isCJK(r) {
				break
			}
			n += size
			n += marks(s[n:])
		}
	case unicode.IsDigit(r):
		for runes := 1; n < len(s) && runes < maxDigitRunes; runes++ {
			r, size := utf8.DecodeRuneInString(s[n:])
			if !unicode.IsDigit(r) {
				break
			}
			n += size
		}
	case r < utf8.RuneSelf:
		for runes := 1; n < len(s) && runes < maxPunctRun && rune(s[n]) == r; runes++ {
			n++
		}
	}
	return n + marks(s[n:])
}

// marks returns the length of the combining marks, variation selectors,
// emoji modifiers and zero-width-joined runes that s starts with: they
// render as part of the rune before them, so a token must not start with one.
func marks(s string) int {
	n := 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me), r >= 0x1f3fb && r <= 0x1f3ff: // skin tones
			n += size
		case r == '\u200d': // zero-width joiner: the next rune belongs too
			n += size
			if n < len(s) {
				_, size = utf8.DecodeRuneInString(s[n:])
				n += size
			}
		default:
			return n
		}
	}
	return n
}

func isCJK(r rune) bool {
	return r >= 0x1100 && unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// countTokens returns how many tokens s has.
func countTokens(s string) int {
	n := 0
	for len(s) > 0 {
		s = s[nextToken(s):]
		n++
	}
	return n
}
