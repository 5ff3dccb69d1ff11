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
//	cd examples && go run ./eval
//	go run ./eval -budgets 16,32 -policies lava,snapkv -n 4 -T 32
//	go run ./eval -prompts my-prompts.txt -out /tmp/eval
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
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
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

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
	case o.window < 1:
		return s, fmt.Errorf("-window = %d, want ≥ 1", o.window)
	case o.steps < 1:
		return s, fmt.Errorf("-T = %d, want ≥ 1", o.steps)
	case o.n < 1:
		return s, fmt.Errorf("-n = %d, want ≥ 1", o.n)
	case o.length < 0:
		return s, fmt.Errorf("-length = %d, want ≥ 0 (0 for -context − T − %d)", o.length, contextMargin)
	case o.workers < 1:
		return s, fmt.Errorf("-j = %d, want ≥ 1", o.workers)
	case o.context < 2:
		return s, fmt.Errorf("-context = %d, want ≥ 2", o.context)
	}
	if o.length == 0 {
		o.length = o.context - o.steps - contextMargin
	}
	if o.prompts == "" && (o.length < 2 || o.length+o.steps > o.context) {
		return s, fmt.Errorf("-length = %d with -T = %d, want 2 ≤ length and length + T ≤ -context = %d", o.length, o.steps, o.context)
	}
	for _, f := range strings.Split(o.budgets, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b <= o.window {
			return s, fmt.Errorf("-budgets: %q, want integers above -window = %d (a budget includes the window)", f, o.window)
		}
		if slices.Contains(s.budgets, b) {
			return s, fmt.Errorf("-budgets: %d given twice", b)
		}
		s.budgets = append(s.budgets, b)
	}
	slices.Sort(s.budgets)
	s.entries = []entry{{key: "full", name: "full cache", full: true}}
	for _, f := range strings.Split(o.policies, ",") {
		key := strings.ToLower(strings.TrimSpace(f))
		p, err := lava.PolicyByName(key)
		if err != nil {
			return s, fmt.Errorf("-policies: %q, want names from %s", f, strings.Join(lava.PolicyNames(), ","))
		}
		if slices.ContainsFunc(s.entries, func(e entry) bool { return e.key == key }) {
			return s, fmt.Errorf("-policies: %q given twice", key)
		}
		s.entries = append(s.entries, entry{key: key, name: p.Name(), policy: p})
	}
	return s, nil
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
	fmt.Fprintf(stderr, "eval: preparing %s prompts\n", map[bool]string{true: "file", false: "sampled"}[o.prompts != ""])
	prompts, desc, err := loadPrompts(o, m, tok)
	if err != nil {
		return err
	}
	s.bos, s.eos = tok.BOS, tok.EOS
	bar := newProgress(stderr)
	res, err := evaluate(m, prompts, s, bar.update)
	bar.finish()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("-out: %v", err)
	}
	rep := reportInput{
		command: commandLine(o.args), model: fmt.Sprintf("%s (sha256 %s…)", filepath.Base(path), sum[:16]),
		m: m, tok: tok, prompts: prompts, promptDesc: desc, s: s, res: res,
	}
	md, plots, err := writeReport(o.out, rep)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "eval: wrote %s and %s plots (PNG, SVG) in %v\n", md, strings.Join(plots, "/"), time.Since(start).Round(time.Second))
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
