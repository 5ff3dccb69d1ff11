// Generate continues a prompt with a Llama GGUF model whose key/value cache
// is a lava.KVCache that stays within its budget for the whole run: the
// prompt is prefilled in chunks of -chunk tokens with the cache compressed
// to the budget after each (the chosen policy), and the text is decoded over
// what was kept, compressed back to the budget whenever it has grown by
// -slack entries per head. It prints the text as it is generated, then a
// report of what the cache held (the peak included) and how fast it ran.
// With -compare it also decodes over the full, uncompressed cache and shows
// where the two continuations part.
//
//	cd examples && go run ./generate
//	go run ./generate -prompt "Once upon a time" -steps 100 -temperature 0.8
//	go run ./generate -budget 32 -compare
//	go run ./generate -chunk 0 -slack 0   # the paper's way: one Compress after the whole prompt
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/internal/modelfile"
	"github.com/lavakv/lava/examples/llama"
	"github.com/lavakv/lava/examples/sample"
	"github.com/lavakv/lava/examples/tokenizer"
)

// defaultPrompt is defaultPromptTokens long with stories260K's vocabulary
// (BOS included): longer than the default budget of 64, so compression
// evicts.
const defaultPrompt = "Once upon a time, there was a little dog named Max. Max liked to run in the park with his friend, a big cat named Tom. " +
	"One day, Max and Tom found a red ball under a tree. They played with the ball all day. " +
	"When the sun went down, they were very tired and happy. Max said, \"Tom, I love to play with you.\" Tom smiled and said,"

const defaultPromptTokens = 128

type options struct {
	model, prompt, policy string
	steps, budget, window int
	chunk, slack          int
	context               int
	temperature, topP     float64
	seed                  uint64
	compare               bool
	kvType, kType, vType  string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the program, returning its exit code: 0, 1 for failures, 2 for
// bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.model, "model", "", modelfile.FlagUsage)
	fs.StringVar(&o.prompt, "prompt", defaultPrompt, fmt.Sprintf("text to continue; the default is %d tokens, more than the default -budget, so compression evicts", defaultPromptTokens))
	fs.IntVar(&o.steps, "steps", 200, "tokens to generate (fewer if the model emits BOS or EOS, or the context is full)")
	fs.Float64Var(&o.temperature, "temperature", 0, "sampling temperature; 0 is greedy (argmax)")
	fs.Float64Var(&o.topP, "topp", 0.9, "top-p (nucleus) sampling threshold in (0, 1]; 1 samples from the whole distribution")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed for sampling")
	fs.IntVar(&o.budget, "budget", 64, "average cache entries kept per KV head per layer after prefill, window included")
	fs.IntVar(&o.window, "window", 8, "most recent prompt tokens whose queries score the rest; always kept")
	fs.IntVar(&o.chunk, "chunk", 32, "prompt tokens per prefill chunk, the cache compressed after each; 0: the whole prompt in one chunk")
	fs.IntVar(&o.slack, "slack", 16, "decode slack S: compress back to -budget once the cache holds -budget + S entries per head; 0: keep every decoded token")
	fs.StringVar(&o.policy, "policy", "lava", "compression policy: "+strings.Join(lava.PolicyNames(), ", "))
	fs.StringVar(&o.kvType, "kv-type", "f32", "storage of keys and values: f32, f16 (half the memory), q8_0 (8.5 bits per element) or q4_0 (4.5 bits)")
	fs.StringVar(&o.kType, "k-type", "", "storage of the keys alone, overriding -kv-type")
	fs.StringVar(&o.vType, "v-type", "", "storage of the values alone, overriding -kv-type")
	fs.BoolVar(&o.compare, "compare", false, "also decode over the full cache and show where the continuations first differ")
	fs.IntVar(&o.context, "context", modelfile.TrainedContext, "most positions (prompt + generated) to run; stories260K was trained on 512")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./generate [flags]\n\n"+
			"Continues -prompt with a Llama GGUF model, keeping its KV cache within -budget entries\n"+
			"per head (plus a prefill chunk, or the decode slack) with LAVa or -policy, then prints\n"+
			"the cache report.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "generate: unexpected argument %q; pass the prompt with -prompt\n", fs.Arg(0))
		return 2
	}
	if err := generate(o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "generate: %v\n", err)
		return 1
	}
	return 0
}

// maxTokens bounds the token counts the flags set, and maxPromptBytes the
// prompt's text: beyond them a run makes no sense for this model.
const (
	maxTokens      = 1 << 20
	maxPromptBytes = 1 << 20
)

func (o *options) check() error {
	switch {
	case o.steps < 1:
		return fmt.Errorf("-steps = %d, want ≥ 1", o.steps)
	case o.window < 1 || o.window > maxTokens:
		return fmt.Errorf("-window = %d, want 1 ≤ window ≤ %d", o.window, maxTokens)
	case o.budget <= o.window || o.budget > maxTokens:
		return fmt.Errorf("-budget = %d, want more than -window = %d (the budget includes the window) and at most %d", o.budget, o.window, maxTokens)
	case o.chunk < 0 || o.chunk > maxTokens:
		return fmt.Errorf("-chunk = %d, want 1 ≤ chunk ≤ %d tokens, or 0 for the whole prompt in one chunk", o.chunk, maxTokens)
	case len(o.prompt) > maxPromptBytes:
		return fmt.Errorf("-prompt is %d bytes, want at most %d", len(o.prompt), maxPromptBytes)
	case o.slack < 0 || o.slack > maxTokens:
		return fmt.Errorf("-slack = %d, want 0 ≤ slack ≤ %d entries per head (0 keeps every decoded token)", o.slack, maxTokens)
	case o.context < 2 || o.context > maxTokens:
		return fmt.Errorf("-context = %d, want 2 ≤ context ≤ %d", o.context, maxTokens)
	case !(o.temperature >= 0) || math.IsInf(o.temperature, 0):
		return fmt.Errorf("-temperature = %v, want a finite value ≥ 0 (0 is greedy)", o.temperature)
	case !(o.topP > 0 && o.topP <= 1):
		return fmt.Errorf("-topp = %v, want a value in (0, 1]", o.topP)
	}
	if _, err := lava.PolicyByName(o.policy); err != nil {
		return fmt.Errorf("-policy = %q, want one of %s", o.policy, strings.Join(lava.PolicyNames(), ", "))
	}
	for _, f := range []struct{ flag, v string }{{"-kv-type", o.kvType}, {"-k-type", o.kType}, {"-v-type", o.vType}} {
		if _, err := lava.ElementByName(f.v); err != nil && f.v != "" {
			return fmt.Errorf("%s = %q, want f32, f16, q8_0 or q4_0", f.flag, f.v)
		}
	}
	return nil
}

// elements returns the key and value storage types the flags select
// (checked by check).
func (o *options) elements() (k, v lava.Element) {
	k, _ = lava.ElementByName(o.kvType)
	v = k
	if o.kType != "" {
		k, _ = lava.ElementByName(o.kType)
	}
	if o.vType != "" {
		v, _ = lava.ElementByName(o.vType)
	}
	return k, v
}

// storageName is how the report names a configuration's storage: one type,
// or keys/values when they differ.
func storageName(cfg lava.Config) string {
	if cfg.KeyElement == cfg.ValueElement {
		return cfg.KeyElement.String()
	}
	return cfg.KeyElement.String() + "/" + cfg.ValueElement.String()
}

// result is one decoding of the prompt's continuation: the tokens
// generated and how long it took.
type result struct {
	tokens []int
	dur    time.Duration
}

func generate(o options, stdout, stderr io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	m, tok, _, err := modelfile.Load(o.model, llama.Load)
	if err != nil {
		return err
	}
	prompt := tok.Encode(o.prompt)
	ctx := min(o.context, max(m.ContextLength, 1))
	if len(prompt) >= ctx {
		return fmt.Errorf("the prompt is %d tokens (BOS included), want fewer than the context of %d (-context)", len(prompt), ctx)
	}
	steps := o.steps
	// The last token generated is never fed back, so n tokens fill
	// positions up to len(prompt)+n−1.
	if len(prompt)+steps-1 > ctx {
		steps = ctx - len(prompt) + 1
		fmt.Fprintf(stderr, "generate: -steps reduced to %d to stay within the context of %d positions\n", steps, ctx)
	}
	cfg := m.CacheConfig(o.budget, o.window)
	cfg.Policy, _ = lava.PolicyByName(o.policy) // checked above
	cfg.DecodeSlack = o.slack
	cfg.KeyElement, cfg.ValueElement = o.elements()
	cache, err := lava.New(cfg)
	if err != nil {
		return err
	}
	seq, err := m.NewSequence(cache)
	if err != nil {
		return err
	}
	chunk := o.chunk
	if chunk == 0 {
		chunk = len(prompt)
	}

	start := time.Now()
	logits, rep, err := seq.Extend(prompt, chunk)
	if err != nil {
		return err
	}
	pre := prefillStats{tokens: len(prompt), chunks: (len(prompt) + chunk - 1) / chunk, dur: time.Since(start), kept: cache.Bytes(), peak: seq.PeakBytes()}
	var full *llama.Sequence
	var fullLogits []float32
	if o.compare {
		// The uncompressed prompt in one chunk, never evicted from.
		fcfg := cfg
		fcfg.Budget, fcfg.DecodeSlack = ctx+1, 0
		fc, err := lava.New(fcfg)
		if err != nil {
			return err
		}
		if full, err = m.NewSequence(fc); err != nil {
			return err
		}
		if fullLogits, err = full.Prefill(prompt); err != nil {
			return err
		}
	}

	// The prompt as the model sees it, then the continuation as it comes.
	fmt.Fprint(stdout, tok.Decode(prompt))
	comp, err := decode(seq, logits, steps, o, tok, prompt[len(prompt)-1], stdout)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)

	var fullRes result
	if o.compare {
		fmt.Fprintf(stdout, "\n--- the same prompt decoded over the full cache ---\n%s", tok.Decode(prompt))
		if fullRes, err = decode(full, fullLogits, steps, o, tok, prompt[len(prompt)-1], stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}

	fmt.Fprintln(stdout)
	report(stdout, o, m, seq, rep, pre, comp)
	if o.compare {
		n := min(len(comp.tokens), len(fullRes.tokens))
		i := 0
		for i < n && comp.tokens[i] == fullRes.tokens[i] {
			i++
		}
		switch {
		case i == n && len(comp.tokens) == len(fullRes.tokens):
			fmt.Fprintf(stdout, "compare:  identical continuations over all %d generated tokens\n", n)
		default:
			fmt.Fprintf(stdout, "compare:  continuations first differ at generated token %d (position %d); full cache decoded at %s\n",
				i, len(prompt)+i, rate(len(fullRes.tokens)-1, fullRes.dur))
		}
	}
	return nil
}

// decode generates up to steps tokens after the prompt, printing each
// as it comes.
func decode(s *llama.Sequence, logits []float32, steps int, o options, tok *tokenizer.Tokenizer, prev int, w io.Writer) (result, error) {
	smp, err := sample.New(o.temperature, o.topP, o.seed)
	if err != nil {
		return result{}, err
	}
	stop := func(id int) bool { return id == tok.BOS || id == tok.EOS }
	emit := func(id int) {
		fmt.Fprint(w, tok.Piece(prev, id))
		prev = id
	}
	start := time.Now()
	out, err := s.Generate(logits, steps, smp.Sample, stop, emit)
	return result{out, time.Since(start)}, err
}

// rate formats n tokens in d as tokens per second.
func rate(n int, d time.Duration) string {
	if n <= 0 || d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f tokens/s", float64(n)/d.Seconds())
}

// prefillStats is what the chunked prefill did: the prompt's tokens and
// chunks, how long it took with the Compress after each chunk, and the
// cache's bytes after it and at its peak.
type prefillStats struct {
	tokens, chunks int
	dur            time.Duration
	kept, peak     int64
}

func report(w io.Writer, o options, m *llama.Model, seq *llama.Sequence, rep lava.Report, pre prefillStats, gen result) {
	cache := seq.Cache()
	cfg := cache.Config()
	// What a full cache holds per position: K and V of every KV head of
	// every layer.
	perToken := int64(m.Layers*m.KVHeads) * cache.EntryBytes()
	positions := cache.Tokens(0)
	fmt.Fprintf(w, "--- cache report: policy %s, budget %d, window %d, chunk %d, slack %d, %v storage ---\n",
		o.policy, cfg.Budget, cfg.Window, o.chunk, cfg.DecodeSlack, storageName(cfg))
	fmt.Fprintf(w, "tokens:   prompt %d (BOS included) in %d chunks, generated %d, cache positions %d\n", pre.tokens, pre.chunks, len(gen.tokens), positions)
	fullPrompt := int64(pre.tokens) * perToken
	fmt.Fprintf(w, "prefill:  full %s, kept %s (%s), peak %s\n", byteCount(fullPrompt), byteCount(pre.kept), ratio(fullPrompt, pre.kept), byteCount(pre.peak))
	fullEnd := int64(positions) * perToken
	fmt.Fprintf(w, "at end:   full %s, kept %s (%s)\n", byteCount(fullEnd), byteCount(cache.Bytes()), ratio(fullEnd, cache.Bytes()))
	fmt.Fprintf(w, "peak:     %s over prefill and decode (%.1f entries per KV head on average), against the full cache's %s at the end (%s)\n",
		byteCount(seq.PeakBytes()), float64(seq.PeakBytes())/float64(perToken), byteCount(fullEnd), ratio(fullEnd, seq.PeakBytes()))
	for l, lr := range rep.Layers {
		state := "kept whole (prompt ≤ budget)"
		if lr.Ranked {
			state = fmt.Sprintf("entropy %.3f, prefix budget %d", lr.Entropy, lr.Budget)
		}
		fmt.Fprintf(w, "layer %d:  entries per KV head after prefill %v of %d; %s\n", l, lr.Kept, pre.tokens, state)
	}
	// The last generated token is never fed, so decoding ran one step
	// fewer than it generated.
	fmt.Fprintf(w, "speed:    prefill %d tokens in %v (%s, Compress after each chunk included), decode %d steps in %v (%s)\n",
		pre.tokens, pre.dur.Round(time.Microsecond), rate(pre.tokens, pre.dur),
		max(len(gen.tokens)-1, 0), gen.dur.Round(time.Microsecond), rate(len(gen.tokens)-1, gen.dur))
}

func byteCount(n int64) string { return fmt.Sprintf("%d bytes", n) }

func ratio(full, kept int64) string {
	if kept == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f× smaller", float64(full)/float64(kept))
}
