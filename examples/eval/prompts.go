package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/llama"
	"github.com/lavakv/lava/examples/sample"
	"github.com/lavakv/lava/examples/tokenizer"
)

// prompt is one text to evaluate on: its tokens (BOS first) and, for
// prompts from a file, the tokens of an expected continuation (nil if the
// file gave none).
type prompt struct {
	tokens   []int
	expected []int
}

// Sampling settings of the generated prompts: close to the story
// distribution the model was trained on, without the low-probability tail.
const (
	promptTemperature = 0.9
	promptTopP        = 0.9
)

// loadPrompts returns the prompts to evaluate and how the report
// describes them.
func loadPrompts(o options, m *llama.Model, tok *tokenizer.Tokenizer) ([]prompt, string, error) {
	if o.prompts == "" {
		ps, err := generatePrompts(m, tok, o.n, o.length, o.seed)
		desc := fmt.Sprintf("%d stories sampled from the model itself, prompt i (from 0) with seed %d+i, temperature %.1f, top-p %.1f, "+
			"BOS and EOS never sampled; %d tokens each, BOS included", o.n, o.seed, promptTemperature, promptTopP, o.length)
		return ps, desc, err
	}
	text, err := os.ReadFile(o.prompts)
	if err != nil {
		return nil, "", fmt.Errorf("-prompts: %v", err)
	}
	texts, expected, err := parsePrompts(string(text))
	if err != nil {
		return nil, "", fmt.Errorf("-prompts %s: %v", o.prompts, err)
	}
	if o.nSet && o.n < len(texts) {
		texts, expected = texts[:o.n], expected[:o.n]
	}
	ps := encodePrompts(tok, texts, expected)
	for i, p := range ps {
		if len(p.tokens) <= o.window {
			return nil, "", fmt.Errorf("-prompts %s: prompt %d is %d tokens (BOS included), want more than -window = %d", o.prompts, i+1, len(p.tokens), o.window)
		}
		if len(p.tokens)+o.steps > o.context {
			return nil, "", fmt.Errorf("-prompts %s: prompt %d is %d tokens (BOS included), want at most -context − T = %d", o.prompts, i+1, len(p.tokens), o.context-o.steps)
		}
		if len(p.tokens)+len(p.expected)-1 > o.context {
			return nil, "", fmt.Errorf("-prompts %s: prompt %d and its expected continuation are %d tokens, want at most -context + 1 = %d", o.prompts, i+1, len(p.tokens)+len(p.expected), o.context+1)
		}
	}
	return ps, fmt.Sprintf("%d prompts from %s", len(ps), filepath.Base(o.prompts)), nil
}

// generatePrompts samples count stories from the model, prompt i with
// sampler seed seed+i, each length tokens long with BOS first. BOS and EOS
// are never sampled (their logits are masked), so each prompt is one story
// running the whole length, whose early names and objects the continuation
// can come back to.
func generatePrompts(m *llama.Model, tok *tokenizer.Tokenizer, count, length int, seed uint64) ([]prompt, error) {
	ps := make([]prompt, count)
	for i := range ps {
		smp, err := sample.New(promptTemperature, promptTopP, seed+uint64(i))
		if err != nil {
			return nil, err
		}
		// The window only needs to be valid; this cache is never
		// compressed.
		cache, err := lava.New(m.CacheConfig(length+1, 1))
		if err != nil {
			return nil, err
		}
		seq, err := m.NewSequence(cache)
		if err != nil {
			return nil, err
		}
		logits, err := seq.Prefill([]int{tok.BOS})
		if err != nil {
			return nil, err
		}
		pick := func(l []float32) int {
			l[tok.BOS], l[tok.EOS] = float32(math.Inf(-1)), float32(math.Inf(-1))
			return smp.Sample(l)
		}
		gen, err := seq.Generate(logits, length-1, pick, nil, nil)
		if err != nil {
			return nil, err
		}
		ps[i].tokens = append([]int{tok.BOS}, gen...)
	}
	return ps, nil
}

// parsePrompts splits the text of a prompts file into prompts. If any line
// is exactly "---", those lines separate prompts (which may then contain
// blank lines); otherwise blank lines do. Inside a prompt, a line exactly
// "=>" ends the prompt text; what follows is its expected continuation.
// Surrounding blank space is trimmed; empty prompts are skipped. It returns
// the prompt texts and continuations ("" for none).
func parsePrompts(text string) (prompts, expected []string, err error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	dashed := false
	for _, l := range lines {
		if strings.TrimSpace(l) == "---" {
			dashed = true
			break
		}
	}
	var blocks [][]string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, cur)
		}
		cur = nil
	}
	for _, l := range lines {
		sep := strings.TrimSpace(l) == "---"
		if !dashed {
			sep = strings.TrimSpace(l) == ""
		}
		if sep {
			flush()
			continue
		}
		cur = append(cur, l)
	}
	flush()
	for i, b := range blocks {
		p, e := b, []string(nil)
		for j, l := range b {
			if strings.TrimSpace(l) == "=>" {
				p, e = b[:j], b[j+1:]
				break
			}
		}
		pt := strings.TrimSpace(strings.Join(p, "\n"))
		et := strings.TrimSpace(strings.Join(e, "\n"))
		if pt == "" {
			if et != "" {
				return nil, nil, fmt.Errorf("prompt %d: an expected continuation after \"=>\" with no prompt text before it", i+1)
			}
			continue
		}
		prompts = append(prompts, pt)
		expected = append(expected, et)
	}
	if len(prompts) == 0 {
		return nil, nil, fmt.Errorf("no prompts: want texts separated by blank lines or \"---\" lines")
	}
	return prompts, expected, nil
}

// encodePrompts tokenises parsed prompts. An expected continuation is
// tokenised on its own, as a new word following the prompt (the
// tokenizer's dummy-prefix space starts it), without BOS.
func encodePrompts(tok *tokenizer.Tokenizer, texts, expected []string) []prompt {
	ps := make([]prompt, len(texts))
	for i, t := range texts {
		ps[i].tokens = tok.Encode(t)
		if expected[i] != "" {
			ps[i].expected = tok.Encode(expected[i])[1:]
		}
	}
	return ps
}
