// Eval measures how much of the model's output quality each KV-cache
// compression policy keeps at each budget. For every prompt it prefills the
// full cache once, follows the full cache's greedy continuation for T
// tokens, and then, for every policy × budget, compresses a copy of the
// prefilled cache and teacher-forces the same continuation over it,
// measuring:
//
//   - KL(full ‖ compressed) of the next-token distributions, mean over the
//     T steps, and top-1 agreement;
//   - how many tokens free-running greedy decoding over the compressed
//     cache follows the full continuation before it first diverges;
//   - long-range recall: over the continuation tokens that copy something
//     found in the prompt only before the observation window (see
//     copySteps), the mean drop in log-probability of that token versus the
//     full cache, and the fraction whose top-1 is still the full model's;
//   - each layer's attention output error at the first decode step,
//     ‖o_full − o_comp‖₁/‖o_full‖₁, the quantity LAVa's bound is about;
//   - the key/value bytes kept against the full cache's;
//   - for prompts from a file with an expected continuation, that
//     continuation's log-probability.
//
// It writes eval.md (one table per metric, mean ± 95 % CI over prompts),
// and kl.png/svg and recall.png/svg (when some prompt has a copy step), to
// -out.
//
// -experiments selects what runs; the default is the budget experiment
// only. Two more measure the cache over a sequence's life, one the storage
// type of its keys and values:
//
//   - chunked: every policy of -chunk-policies at every budget of
//     -chunk-budgets prefills each prompt itself in chunks of each size of
//     -chunks (Compress after each chunk, later chunks computed over the
//     compressed past), and is measured like the budget experiment, against
//     one-shot compression ("whole"). It writes chunked.md and chunked-kl.
//
//   - long: short sampled prompts of -long-prompt tokens continued for
//     -long-T tokens, teacher-forced to the full cache's greedy
//     continuation over a cache bounded at -long-budget with decode slack
//     -slack: KL and top-1 by position, cache bytes by position. It writes
//     long.md, long-kl and long-bytes.
//
//   - storage: each prompt is prefilled into a cache of every storage
//     type of -storage-types (float32, float16, Q8_0, Q4_0, mixed keys and
//     values); every policy of -storage-policies at every budget of
//     -budgets, and the uncompressed cache of that type, is then measured
//     like the budget experiment against the float32 full cache. The
//     equal-bytes frontier gives, for each byte budget, the (type, budget)
//     closest to the full cache. It writes storage.md and storage-kl.
//
//     cd examples && go run ./eval
//     go run ./eval -budgets 16,32 -policies lava,snapkv -n 4 -T 32
//     go run ./eval -prompts my-prompts.txt -out /tmp/eval
//     go run ./eval -experiments chunked,long -out ../docs/results
//     go run ./eval -experiments storage -out ../docs/results
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/internal/modelfile"
	"github.com/lavakv/lava/examples/llama"
)

// contextMargin is how far below the context the default generated
// prompt stops, besides the T continuation tokens.
const contextMargin = 8

type options struct {
	model, prompts, out      string
	budgets, policies        string
	window, steps, n, length int
	context, workers         int
	seed                     uint64
	nSet                     bool
	args                     []string

	experiments                 string
	chunks, chunkBudgets        string
	chunkPolicies, longPolicies string
	longBudget, slack           int
	longPrompt, longSteps       int
	storageTypes                string
	storagePolicies             string
}

// experimentNames are what -experiments accepts, in the order they run.
var experimentNames = []string{"budgets", "chunked", "long", "storage"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Bounds of the flags, beyond which a run makes no sense on this model or
// would exhaust the machine.
const (
	maxContext = 1 << 20
	maxPrompts = 1 << 16
	maxWorkers = 256
)

// run is the program, returning its exit code: 0, 1 for failures, 2 for
// bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{args: args}
	fs.StringVar(&o.model, "model", "", modelfile.FlagUsage)
	fs.StringVar(&o.prompts, "prompts", "", "`file` of prompts separated by blank lines (or by \"---\" lines, if any); a line \"=>\" inside a prompt starts its expected continuation. Default: stories sampled from the model")
	fs.IntVar(&o.n, "n", 32, "number of prompts: sampled stories, or the first n of -prompts (all of the file unless -n is given)")
	fs.IntVar(&o.length, "length", 0, "tokens per sampled prompt, BOS included; 0 is -context − T − 8")
	fs.Uint64Var(&o.seed, "seed", 1, "sampled prompt i (from 0) uses sampler seed seed+i")
	fs.StringVar(&o.budgets, "budgets", "16,24,32,48,64,96,128", "comma-separated budgets: average entries kept per KV head per layer, window included")
	fs.IntVar(&o.window, "window", 8, "observation window w: the most recent prompt tokens whose queries score the rest; always kept")
	fs.IntVar(&o.steps, "T", 64, "continuation tokens measured per prompt")
	fs.StringVar(&o.policies, "policies", strings.Join(lava.PolicyNames(), ","), "comma-separated policies (the full cache is always added)")
	fs.IntVar(&o.context, "context", modelfile.TrainedContext, "most positions a prompt and its continuation may use; stories260K was trained on 512")
	fs.IntVar(&o.workers, "j", runtime.GOMAXPROCS(0), "policy × budget runs evaluated in parallel")
	fs.StringVar(&o.out, "out", "eval-results", "`directory` for eval.md and the plots")
	fs.StringVar(&o.experiments, "experiments", "budgets", "comma-separated experiments to run: budgets (eval.md), chunked (chunked.md), long (long.md), storage (storage.md)")
	fs.StringVar(&o.chunks, "chunks", "16,32,64,128,whole", "chunked: comma-separated prefill chunk sizes; whole is the prompt in one chunk (one-shot)")
	fs.StringVar(&o.chunkBudgets, "chunk-budgets", "32,64", "chunked: comma-separated budgets")
	fs.StringVar(&o.chunkPolicies, "chunk-policies", "lava,snapkv,ada-snapkv,cake,h2o", "chunked: comma-separated policies")
	fs.StringVar(&o.longPolicies, "long-policies", "lava,snapkv,ada-snapkv,vatp,h2o,tova,streamingllm,cake", "long: comma-separated policies")
	fs.IntVar(&o.longBudget, "long-budget", 64, "long: budget B of the bounded cache")
	fs.IntVar(&o.slack, "slack", 16, "long: decode slack S (lava Config.DecodeSlack): compress back to B once the cache holds B + S entries per head")
	fs.IntVar(&o.longPrompt, "long-prompt", 32, "long: tokens per sampled prompt, BOS included")
	fs.IntVar(&o.longSteps, "long-T", 448, "long: decoded tokens measured per prompt")
	fs.StringVar(&o.storageTypes, "storage-types", "f32,f16,q8_0,q4_0,q8_0/q4_0", "storage: comma-separated storage types of keys and values (f32, f16, q8_0, q4_0), or k/v for keys of type k and values of type v; f32 is always added")
	fs.StringVar(&o.storagePolicies, "storage-policies", "lava,snapkv", "storage: comma-separated policies")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./eval [flags]\n\n"+
			"Measures the output quality each KV-cache policy keeps at each budget against the\n"+
			"full cache, and writes a Markdown report and plots to -out.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "eval: unexpected argument %q; flags only\n", fs.Arg(0))
		return 2
	}
	fs.Visit(func(f *flag.Flag) { o.nSet = o.nSet || f.Name == "n" })
	s, err := o.settings()
	if err != nil {
		fmt.Fprintf(stderr, "eval: %v\n", err)
		return 2
	}
	if err := evalMain(o, s, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "eval: %v\n", err)
		return 1
	}
	return 0
}

// settings checks the flags and returns what they select.
func (o *options) settings() (settings, error) {
	s := settings{window: o.window, steps: o.steps, workers: o.workers}
	switch {
	case o.context < 2 || o.context > maxContext:
		return s, fmt.Errorf("-context = %d, want 2 ≤ context ≤ %d", o.context, maxContext)
	case o.window < 1 || o.window >= o.context:
		return s, fmt.Errorf("-window = %d, want 1 ≤ window < -context = %d", o.window, o.context)
	case o.steps < 1 || o.steps >= o.context:
		return s, fmt.Errorf("-T = %d, want 1 ≤ T < -context = %d", o.steps, o.context)
	case o.n < 1 || o.n > maxPrompts:
		return s, fmt.Errorf("-n = %d, want 1 ≤ n ≤ %d", o.n, maxPrompts)
	case o.length < 0 || o.length > o.context:
		return s, fmt.Errorf("-length = %d, want 0 ≤ length ≤ -context (0 for -context − T − %d)", o.length, contextMargin)
	case o.workers < 1 || o.workers > maxWorkers:
		return s, fmt.Errorf("-j = %d, want 1 ≤ j ≤ %d", o.workers, maxWorkers)
	}
	if o.length == 0 {
		o.length = o.context - o.steps - contextMargin
	}
	if o.prompts == "" && (o.length < 2 || o.length+o.steps > o.context) {
		return s, fmt.Errorf("-length = %d with -T = %d, want 2 ≤ length and length + T ≤ -context = %d", o.length, o.steps, o.context)
	}
	if o.prompts == "" && o.length <= o.window {
		return s, fmt.Errorf("-length = %d, want more than -window = %d (the window is part of the prompt)", o.length, o.window)
	}
	var err error
	if s.budgets, err = budgetList("-budgets", o.budgets, o.window); err != nil {
		return s, err
	}
	es, err := policyEntries("-policies", o.policies)
	if err != nil {
		return s, err
	}
	s.entries = append([]entry{{key: "full", name: "full cache", full: true}}, es...)
	for _, f := range strings.Split(o.experiments, ",") {
		name := strings.TrimSpace(f)
		if !slices.Contains(experimentNames, name) {
			return s, fmt.Errorf("-experiments: %q, want names from %s", f, strings.Join(experimentNames, ","))
		}
		s.experiments = append(s.experiments, name)
	}
	if s.run("chunked") {
		if s.chunked, err = o.chunkedSettings(); err != nil {
			return s, err
		}
	}
	if s.run("long") {
		if s.long, err = o.longSettings(s); err != nil {
			return s, err
		}
	}
	if s.run("storage") {
		if s.storage, err = o.storageSettings(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// budgetList parses a comma-separated list of budgets above the window.
func budgetList(flagName, list string, window int) ([]int, error) {
	var bs []int
	for _, f := range strings.Split(list, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b <= window {
			return nil, fmt.Errorf("%s: %q, want integers above -window = %d (a budget includes the window)", flagName, f, window)
		}
		if slices.Contains(bs, b) {
			return nil, fmt.Errorf("%s: %d given twice", flagName, b)
		}
		bs = append(bs, b)
	}
	slices.Sort(bs)
	return bs, nil
}

func (o *options) chunkedSettings() (chunkedSettings, error) {
	var cs chunkedSettings
	for _, f := range strings.Split(o.chunks, ",") {
		f = strings.TrimSpace(f)
		c, err := strconv.Atoi(f)
		switch {
		case f == "whole":
			c = 0
		case err != nil || c < 1:
			return cs, fmt.Errorf("-chunks: %q, want chunk sizes ≥ 1 or whole", f)
		}
		if slices.Contains(cs.chunks, c) {
			return cs, fmt.Errorf("-chunks: %q given twice", f)
		}
		cs.chunks = append(cs.chunks, c)
	}
	// Ascending, the whole prompt last.
	slices.SortFunc(cs.chunks, func(a, b int) int { return cmpFloat(chunkOrder(a), chunkOrder(b)) })
	var err error
	if cs.budgets, err = budgetList("-chunk-budgets", o.chunkBudgets, o.window); err != nil {
		return cs, err
	}
	cs.entries, err = policyEntries("-chunk-policies", o.chunkPolicies)
	return cs, err
}

func chunkOrder(c int) float64 {
	if c == 0 {
		return math.Inf(1)
	}
	return float64(c)
}

func (o *options) longSettings(s settings) (longSettings, error) {
	ls := longSettings{budget: o.longBudget, slack: o.slack, promptLen: o.longPrompt, steps: o.longSteps, window: o.window, jobs: s.workers}
	switch {
	case o.longBudget <= o.window:
		return ls, fmt.Errorf("-long-budget = %d, want more than -window = %d", o.longBudget, o.window)
	case o.slack < 0 || o.slack > 1<<20:
		return ls, fmt.Errorf("-slack = %d, want 0 ≤ S ≤ %d", o.slack, 1<<20)
	case o.longPrompt < 2 || o.longSteps < 1 || o.longPrompt+o.longSteps > o.context:
		return ls, fmt.Errorf("-long-prompt = %d with -long-T = %d, want 2 ≤ prompt, 1 ≤ T and prompt + T ≤ -context = %d", o.longPrompt, o.longSteps, o.context)
	}
	var err error
	ls.entries, err = policyEntries("-long-policies", o.longPolicies)
	return ls, err
}

func evalMain(o options, s settings, stdout, stderr io.Writer) error {
	start := time.Now()
	m, tok, path, err := modelfile.Load(o.model, llama.Load)
	if err != nil {
		return err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return err
	}
	command, model := commandLine(o.args), fmt.Sprintf("%s (sha256 %s…)", filepath.Base(path), sum[:16])
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("-out: %v", err)
	}
	wrote := func(md string, plots []string) {
		fmt.Fprintf(stdout, "eval: wrote %s and %s plots (PNG, SVG) in %v\n", md, strings.Join(plots, "/"), time.Since(start).Round(time.Second))
	}
	s.bos, s.eos = tok.BOS, tok.EOS
	var prompts []prompt
	var desc string
	if s.run("budgets") || s.run("chunked") || s.run("storage") {
		fmt.Fprintf(stderr, "eval: preparing %s prompts\n", map[bool]string{true: "file", false: "sampled"}[o.prompts != ""])
		if prompts, desc, err = loadPrompts(o, m, tok); err != nil {
			return err
		}
	}
	if s.run("budgets") {
		bar := newProgress(stderr)
		res, err := evaluate(m, prompts, s, bar.update)
		bar.finish()
		if err != nil {
			return err
		}
		rep := reportInput{command: command, model: model, m: m, tok: tok, prompts: prompts, promptDesc: desc, s: s, res: res}
		md, plots, err := writeReport(o.out, rep)
		if err != nil {
			return err
		}
		wrote(md, plots)
	}
	if s.run("chunked") {
		fmt.Fprintf(stderr, "eval: chunked prefill\n")
		bar := newProgress(stderr)
		res, err := evaluateChunked(m, prompts, s, s.chunked, bar.update)
		bar.finish()
		if err != nil {
			return err
		}
		md, plots, err := writeChunkedReport(o.out, chunkedReportInput{command: command, model: model, promptDesc: desc, m: m, prompts: prompts, s: s, cs: s.chunked, res: res})
		if err != nil {
			return err
		}
		wrote(md, plots)
	}
	if s.run("long") {
		fmt.Fprintf(stderr, "eval: long generation, preparing %d sampled prompts\n", o.n)
		ls := s.long
		ls.bos, ls.eos = tok.BOS, tok.EOS
		ps, err := generatePrompts(m, tok, o.n, ls.promptLen, o.seed)
		if err != nil {
			return err
		}
		bar := newProgress(stderr)
		res, err := evaluateLong(m, ps, ls, bar.update)
		bar.finish()
		if err != nil {
			return err
		}
		md, plots, err := writeLongReport(o.out, longReportInput{command: command, model: model, m: m, ls: ls, res: res, seed: o.seed})
		if err != nil {
			return err
		}
		wrote(md, plots)
	}
	if s.run("storage") {
		fmt.Fprintf(stderr, "eval: storage types\n")
		bar := newProgress(stderr)
		res, err := evaluateStorage(m, prompts, s, s.storage, bar.update)
		bar.finish()
		if err != nil {
			return err
		}
		md, plots, err := writeStorageReport(o.out, storageReportInput{command: command, model: model, promptDesc: desc, m: m, prompts: prompts, s: s, res: res})
		if err != nil {
			return err
		}
		wrote(md, plots)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// commandLine is the command that reproduces the run, quoted for a POSIX
// shell where needed.
func commandLine(args []string) string {
	parts := []string{"cd examples && go run ./eval"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t\"'$`\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// progress draws a bar on a terminal-like writer, at most every 100 ms.
type progress struct {
	w     io.Writer
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w, start: time.Now()} }

func (p *progress) update(done, total int, what string) {
	now := time.Now()
	if done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	fill := width * done / total
	el := now.Sub(p.start)
	eta := "?"
	if done > 0 {
		eta = (time.Duration(float64(el) / float64(done) * float64(total-done))).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d  %s, ETA %s  %-40.40s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		100*done/total, done, total, el.Round(time.Second), eta, what)
	p.drawn = true
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
