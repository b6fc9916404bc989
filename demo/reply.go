package demo

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
)

// A reply is put together from the phrase banks below, each choice made by a
// generator seeded from the request, so that the same request always gets
// the same reply and different ones get visibly different replies. The banks
// are written so that every reply carries what a chat UI must render:
// paragraphs, a list, bold, emphasis, inline code, a link, a fenced code
// block over several lines, CJK, accented letters and an emoji.

// Every opener says plainly what this model is, and quotes the user.
var openers = []string{
	"Hi! I'm **Sluice's built-in demo model**, not a real LLM, so I can't truly think about %s. But I can stream a reply token by token, like a real model.",
	"You wrote %s. I'm the `demo` model built into Sluice (*not a real LLM*), so here is a canned answer that exercises what a chat UI must render.",
	"Thanks for %s! This is Sluice's built-in **demo** model, not a real language model: every word below comes from a small phrase bank.",
	"Sluice's built-in demo model here, *not a real LLM*. You sent %s; I can't answer that for real, but I can show what a streamed answer looks like.",
}

var paragraphs = []string{
	"Sluice treats every answer as a **log** of events with increasing IDs, so a dropped connection *resumes* with `Last-Event-ID` and loses nothing.",
	"Each piece you see is one Server-Sent Event holding a `chat.completion.chunk`, flushed **at once**; the stream ends with `[DONE]`, *never* a silent cut.",
	"These tokens are small on purpose, like a real tokenizer's, so your UI gets a **realistic** workout, with *emphasis* that closes a few tokens later.",
	"This model is **deterministic**: the same messages and `seed` give the same reply on any machine, which makes it handy for *tests* and benchmarks.",
}

var listIntros = []string{
	"A few things worth trying:",
	"What this reply lets you check:",
	"Some experiments for your client:",
}

var listItems = []string{
	"Reload mid-answer: the stream **resumes** where it stopped.",
	"Open a second tab; both readers see *every* token.",
	"Watch the `id:` field grow with each event.",
	"Send `max_tokens: 5` to get finish reason `length`.",
	"Say **short** or **long** for other reply sizes.",
	"Stop it with `POST /v1/streams/{id}/cancel`.",
	"Use the official `openai` SDK, unchanged.",
}

var links = []string{
	"More in [the SSE spec](https://html.spec.whatwg.org/multipage/server-sent-events.html).",
	"Browsers read it with [EventSource](https://developer.mozilla.org/docs/Web/API/EventSource).",
	"It speaks [OpenAI's chat API](https://platform.openai.com/docs/api-reference/chat), so clients need no changes.",
}

// Code is indented with tabs, as gofmt would; a tab run becomes a token of
// its own, which tests that a client keeps whitespace inside code blocks.
var codes = []struct{ intro, code string }{
	{"A small Go loop that reads such a stream:",
		"sc := bufio.NewScanner(resp.Body)\nfor sc.Scan() {\n\tif data, ok := strings.CutPrefix(sc.Text(), \"data: \"); ok {\n\t\tfmt.Println(data)\n\t}\n}"},
	{"The pacing idea, sketched in Go:",
		"start := time.Now()\nfor i, tok := range tokens {\n\ttime.Sleep(time.Until(start.Add(time.Duration(i) * gap)))\n\temit(tok)\n}"},
	{"Some code, to test your syntax highlighting:",
		"func main() {\n\tfor _, w := range []string{\"hello\", \"你好\", \"olá\"} {\n\t\tfmt.Println(w, \"🚀\")\n\t}\n}"},
	{"An event of the log, roughly:",
		"type Event struct {\n\tID   string // opaque, increasing\n\tData []byte\n}"},
}

// Every unicode line has CJK, accented letters and an emoji of one rune.
var unicodeLines = []string{
	"Unicode check: 你好，世界 · café, naïve, Zürich · 🚀",
	"Beyond ASCII: 你好, こんにちは, 안녕하세요 · déjà vu, señor, Ångström 🎉",
	"Multi-byte runes never split across tokens: 你好 · crème brûlée · São Paulo 🌊",
}

var closers = []string{
	"That's all from the demo: connect a real model for real answers.",
	"Send another message for another canned reply. 🚀",
	"*End of demo reply.* No neural network was involved.",
}

// Short replies are one line, for tests that want a stream of a few events.
var shorts = []string{
	"Sluice's built-in demo model (not a real LLM) here: you said %s. ✅",
	"Short and sweet: this is Sluice's demo model, not a real LLM, echoing %s.",
	"Demo model, not an LLM: %s received. 👍",
}

// longTokens is how long a "long" reply grows, for load tests.
const longTokens = 2000

// reply returns the whole answer to req.
func reply(req *sluice.ChatRequest) string {
	last, users, system := "", 0, false
	for _, m := range req.Messages {
		switch m.Role {
		case "user":
			last, users = m.Text(), users+1
		case "system", "developer":
			system = true
		}
	}
	r := rng{seed(last, len(req.Messages), req.Seed)}
	q := quote(last)
	if hasWord(last, "short") {
		return fmt.Sprintf(pick(&r, shorts), q)
	}

	var b strings.Builder
	b.Grow(1500)
	fmt.Fprintf(&b, pick(&r, openers), q)
	if system {
		b.WriteString(" I also received a system prompt, which a demo model politely ignores.")
	}
	b.WriteString("\n\n")
	if hasWord(last, "long") {
		// Sections are added until the reply is long enough; counting each
		// section once keeps this linear.
		n := countTokens(b.String())
		for part := 1; n < longTokens; part++ {
			start := b.Len()
			fmt.Fprintf(&b, "### Part %d\n\n", part)
			section(&b, &r)
			n += countTokens(b.String()[start:])
		}
	} else {
		section(&b, &r)
	}
	b.WriteString(pick(&r, closers))
	if users > 1 {
		fmt.Fprintf(&b, " (That was your message number %d in this chat.)", users)
	}
	return b.String()
}

// section writes the body of a reply: paragraph, list, link, code, unicode.
func section(b *strings.Builder, r *rng) {
	b.WriteString(pick(r, paragraphs))
	b.WriteString("\n\n")

	b.WriteString(pick(r, listIntros))
	b.WriteString("\n\n")
	numbered := r.intn(2) == 0
	items := r.perm(len(listItems))[:3]
	for i, it := range items {
		if numbered {
			fmt.Fprintf(b, "%d. ", i+1)
		} else {
			b.WriteString("- ")
		}
		b.WriteString(listItems[it])
		b.WriteString("\n")
	}
	b.WriteString("\n")

	b.WriteString(pick(r, links))
	b.WriteString(" ")
	c := codes[r.intn(len(codes))]
	b.WriteString(c.intro)
	b.WriteString("\n\n```go\n")
	b.WriteString(c.code)
	b.WriteString("\n```\n\n")

	b.WriteString(pick(r, unicodeLines))
	b.WriteString("\n\n")
}

// quote returns the start of the user's message, on one line and in quotes,
// short enough not to drown the reply.
func quote(text string) string {
	const maxWords, maxRunes = 6, 40
	words := strings.Fields(text)
	if len(words) == 0 {
		return "an empty message"
	}
	var b strings.Builder
	b.WriteString("“")
	runes := 0
	for i, w := range words {
		if i == maxWords || runes+utf8.RuneCountInString(w) > maxRunes {
			if i == 0 { // one giant word: cut it at a rune boundary
				for _, c := range w {
					if runes == maxRunes {
						break
					}
					b.WriteRune(c)
					runes++
				}
			}
			b.WriteString("…")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		runes += utf8.RuneCountInString(w) + 1
	}
	b.WriteString("”")
	return b.String()
}

// hasWord reports whether text has word as a whole word, in any case.
func hasWord(text, word string) bool {
	for _, w := range strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if strings.EqualFold(w, word) {
			return true
		}
	}
	return false
}

// seed derives the generator's seed from the last user message, the number
// of messages (so that the next turn of a chat gets another reply) and the
// request's seed if it has one (so that a client can ask for a different
// reply to the same messages). It is FNV-1a, written out so that the result
// is the same on every machine and costs no allocation.
func seed(last string, messages int, reqSeed *int64) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(last); i++ {
		h = (h ^ uint64(last[i])) * prime
	}
	h = (h ^ uint64(messages)) * prime
	if reqSeed != nil {
		h ^= mix(uint64(*reqSeed))
	}
	return h
}

// rng is SplitMix64: tiny, and defined here rather than borrowed from
// math/rand so that no library change can alter the replies.
type rng struct{ s uint64 }

func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// intn returns a number in [0, n); its slight modulo bias does not matter here.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// perm returns a permutation of [0, n) (Fisher–Yates).
func (r *rng) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], i
	}
	return p
}

func pick(r *rng, bank []string) string { return bank[r.intn(len(bank))] }
