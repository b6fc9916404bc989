package demo

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// tokens cuts s into its tokens.
func tokens(s string) []string {
	var out []string
	for len(s) > 0 {
		n := nextToken(s)
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func TestTokensLookLikeAnLLMTokenizers(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"words carry their leading space", "Hello, world!", []string{"Hello", ",", " world", "!"}},
		{"newlines stand alone", "a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"CRLF is one newline", "a\r\nb", []string{"a", "\r\n", "b"}},
		{"extra spaces before a word", "x   y", []string{"x", "  ", " y"}},
		{"trailing spaces", "x  \ny", []string{"x", "  ", "\n", "y"}},
		{"tab indentation", "\t\tif", []string{"\t\t", "if"}},
		{"markdown runs", " **bold** ```go", []string{" **", "bold", "**", " ```", "go"}},
		{"long runs split in threes", "*****", []string{"***", "**"}},
		{"numbers in groups of three", "v12345", []string{"v", "123", "45"}},
		{"long words split", "internationalization", []string{"internatio", "nalization"}},
		{"accented letters", " café naïve", []string{" café", " naïve"}},
		{"combining accent stays with its letter", "cafe\u0301s", []string{"cafe\u0301s"}},
		{"one CJK character per token", "你好，世界", []string{"你", "好", "，", "世", "界"}},
		{"CJK after a space", "say 你好", []string{"say", " 你", "好"}},
		{"emoji", "go 🚀🚀", []string{"go", " 🚀", "🚀"}},
		{"variation selector", "❤️!", []string{"❤️", "!"}},
		{"skin tone", "👍🏽👍", []string{"👍🏽", "👍"}},
		{"zero-width joiner sequence", "👨\u200d👩\u200d👧 ok", []string{"👨\u200d👩\u200d👧", " ok"}},
		{"a stray byte", "a\xffb", []string{"a", "\xff", "b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := tokens(c.in)
			if !slices.Equal(got, c.want) {
				t.Errorf("tokens(%q) = %q, want %q", c.in, got, c.want)
			}
			if n := countTokens(c.in); n != len(c.want) {
				t.Errorf("countTokens(%q) = %d, want %d", c.in, n, len(c.want))
			}
		})
	}
}

// FuzzTokensRejoinAndNeverSplitARune checks the tokenizer's two promises on
// any text: the tokens join back to it, and none cuts a rune in two.
func FuzzTokensRejoinAndNeverSplitARune(f *testing.F) {
	for _, s := range []string{"Hello, world!", "你好 🚀 café\n\n```go\n\tx := 1\n```", "e\u0301\u200d", "  \t \r\n", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks := tokens(s)
		if strings.Join(toks, "") != s {
			t.Fatalf("tokens of %q join to something else: %q", s, toks)
		}
		valid := utf8.ValidString(s)
		for _, tok := range toks {
			if tok == "" {
				t.Fatalf("an empty token in %q", toks)
			}
			if valid && !utf8.ValidString(tok) {
				t.Fatalf("token %q of valid text %q is not valid UTF-8", tok, s)
			}
		}
	})
}
