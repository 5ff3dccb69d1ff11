package main

import (
	"bytes"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/internal/modelfile"
	"github.com/lavakv/lava/examples/llama"
	"github.com/lavakv/lava/examples/sample"
	"github.com/lavakv/lava/examples/tokenizer"
)

// testModel loads stories260K as the programs find it; without it the
// test is skipped, or fails on CI (CI=true), where it must be present.
func testModel(t *testing.T) (*llama.Model, *tokenizer.Tokenizer, string) {
	t.Helper()
	p := modelfile.PathForTest(t)
	m, tok, err := llama.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok, p
}

func testSettings(tok *tokenizer.Tokenizer, keys ...string) settings {
	s := settings{budgets: []int{16}, window: 8, steps: 24, workers: 2, bos: tok.BOS, eos: tok.EOS}
	for _, k := range keys {
		p, _ := lava.PolicyByName(k)
		s.entries = append(s.entries, entry{key: k, name: p.Name(), policy: p})
	}
	return s
}

// A cache compressed with a budget above the prompt length keeps
// everything, so it must match the full cache exactly.
func TestBudgetAbovePrompt(t *testing.T) {
	m, tok, _ := testModel(t)
	ps, err := generatePrompts(m, tok, 1, 60, 7)
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	s := testSettings(tok, "lava", "snapkv", "h2o", "streamingllm", "tova", "cake")
	base, logits0, err := prefill(m, p, s)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := fullReference(m, base, logits0, p, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.entries {
		budget := len(p.tokens) + 1
		if e.key == "streamingllm" || e.key == "tova" || e.key == "cake" {
			// These evict while decoding once the cache outgrows the
			// budget, so only a budget above the prompt and all T
			// continuation tokens keeps everything.
			budget += s.steps
		}
		c, err := evalCell(m, base, logits0, p, ref, e, budget, s)
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if c.kl != 0 || c.agree != 1 || c.diverge != s.steps || c.kept != c.full || slicesMax(c.attnErr) != 0 {
			t.Errorf("%s at budget %d, prompt %d: KL %g, agreement %g, divergence %d of %d, kept %d of %d bytes, attention error %v; want 0, 1, none, all, 0",
				e.name, budget, len(p.tokens), c.kl, c.agree, c.diverge, s.steps, c.kept, c.full, c.attnErr)
		}
		if len(ref.copies) > 0 && (c.recallDrop != 0 || c.recallTop1 != 1) {
			t.Errorf("%s: recall drop %g, top-1 %g, want 0 and 1", e.name, c.recallDrop, c.recallTop1)
		}
	}
	// And a tight budget does evict and change something, or the
	// comparison above proves nothing.
	c, err := evalCell(m, base, logits0, p, ref, s.entries[0], 12, s)
	if err != nil {
		t.Fatal(err)
	}
	if !(c.kl > 0) || c.kept >= c.full || !(slicesMax(c.attnErr) > 0) {
		t.Errorf("LAVa at budget 12 of %d tokens: KL %g, kept %d of %d bytes, attention error %v; want a difference", len(p.tokens), c.kl, c.kept, c.full, c.attnErr)
	}
}

func slicesMax(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// The divergence taken from the teacher-forced run equals what
// free-running greedy decoding over the compressed cache does.
func TestDivergenceIsFreeRunning(t *testing.T) {
	m, tok, _ := testModel(t)
	s := testSettings(tok, "lava", "streamingllm")
	s.steps = 48
	ps, err := generatePrompts(m, tok, 3, 300, 11)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range ps {
		base, logits0, err := prefill(m, p, s)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := fullReference(m, base, logits0, p, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range s.entries {
			c, err := evalCell(m, base, logits0, p, ref, e, 16, s)
			if err != nil {
				t.Fatal(err)
			}
			cfg := m.CacheConfig(16, s.window)
			cfg.Policy = e.policy
			comp, err := base.CloneWith(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := comp.Compress(); err != nil {
				t.Fatal(err)
			}
			seq, err := m.Continue(comp)
			if err != nil {
				t.Fatal(err)
			}
			// c₀ comes from the prefill; the steps follow.
			gen, err := seq.Generate(logits0, s.steps+1, sample.Argmax, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			free := 0
			for free < s.steps && gen[free+1] == ref.cont[free+1] {
				free++
			}
			if free != c.diverge {
				t.Errorf("%s: free-running greedy follows the full continuation for %d tokens, the teacher-forced run says %d", e.name, free, c.diverge)
			}
			if c.diverge < s.steps {
				checked++
			}
		}
	}
	if checked == 0 {
		t.Error("no run diverged, so the test compared nothing but full agreement")
	}
}

// The report of a tiny run has every table and both plots, and two runs
// write identical reports.
func TestReportTiny(t *testing.T) {
	_, _, path := testModel(t)
	dir := t.TempDir()
	args := []string{"-model", path, "-n", "2", "-budgets", "16,32", "-policies", "lava,snapkv", "-T", "8", "-length", "120", "-out", dir}
	var stderr bytes.Buffer
	if code := run(args, io.Discard, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "eval.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"go run ./eval -model", "## KL(full ‖ compressed)", "## Top-1 agreement", "## Greedy tokens before the first divergence",
		"## Long-range recall: log-probability drop", "## Long-range recall: top-1 kept", "## Attention output error",
		"## Key/value bytes kept", "### B = 32", "| LAVa |", "| SnapKV |", "| full cache |", "| B = 16 | B = 32 |", "Paired difference",
	} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("eval.md lacks %q", want)
		}
	}
	if bytes.Contains(md, []byte("Expected continuation")) {
		t.Error("eval.md has an expected-continuation table without any expected continuation")
	}
	for _, name := range []string{"kl", "recall"} {
		for _, ext := range []string{"png", "svg"} {
			b, err := os.ReadFile(filepath.Join(dir, name+"."+ext))
			if err != nil || len(b) == 0 {
				t.Errorf("%s.%s: %d bytes, %v", name, ext, len(b), err)
				continue
			}
			if ext == "png" {
				if _, err := png.Decode(bytes.NewReader(b)); err != nil {
					t.Errorf("%s.png does not decode: %v", name, err)
				}
			} else if !bytes.Contains(b, []byte("<svg")) {
				t.Errorf("%s.svg has no <svg element", name)
			}
		}
	}
	// The same command again (same -out, since the command is in the
	// report) gives the same bytes.
	if code := run(args, io.Discard, io.Discard); code != 0 {
		t.Fatalf("second run = %d", code)
	}
	md2, err := os.ReadFile(filepath.Join(dir, "eval.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(md, md2) {
		t.Error("two runs of the same command wrote different eval.md")
	}
}

func TestPromptsFile(t *testing.T) {
	_, _, path := testModel(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "prompts.txt")
	text := "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. " +
		"She wanted to play with it, but it was too high. Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and did not know what to do.\n" +
		"=>\nLily said, \"I want to play with the ball.\"\n---\n" +
		"Tom had a small dog named Max. Max liked to run and jump in the garden with Tom every day, and Tom liked to throw a stick for him.\n"
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-model", path, "-prompts", file, "-budgets", "16", "-policies", "lava,streamingllm", "-T", "8", "-out", dir}
	var stderr bytes.Buffer
	if code := run(args, io.Discard, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "eval.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 prompts from prompts.txt", "## Expected continuation: log-probability drop", "over 1 prompts with one"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("eval.md lacks %q", want)
		}
	}
}

// Prompts too short to have copy steps leave recall without values: the
// report says so and draws no recall plot.
func TestNoCopySteps(t *testing.T) {
	_, _, path := testModel(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "prompts.txt")
	if err := os.WriteFile(file, []byte("Once upon a time, there was a little girl named Lily.\n---\nTom had a small dog named Max.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-model", path, "-prompts", file, "-budgets", "16,24", "-policies", "lava,snapkv", "-T", "8", "-out", dir}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "eval.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "0 copy steps in 0 of 2 prompts") {
		t.Errorf("eval.md does not say there are no copy steps")
	}
	if _, err := os.Stat(filepath.Join(dir, "recall.png")); err == nil {
		t.Error("recall.png drawn without values")
	}
	if !strings.Contains(stdout.String(), " kl plots") {
		t.Errorf("stdout %q, want it to name the kl plots only", stdout.String())
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-budgets", "8,16"}, "above -window = 8"},
		{[]string{"-budgets", "16,x"}, `"x"`},
		{[]string{"-budgets", "16,16"}, "given twice"},
		{[]string{"-policies", "lava,nope"}, `"nope"`},
		{[]string{"-T", "0"}, "-T = 0"},
		{[]string{"-length", "500"}, "-length = 500"},
		{[]string{"-n", "0"}, "-n = 0"},
		{[]string{"-j", "1000000"}, "-j = 1000000, want 1 ≤ j ≤ 256"},
		{[]string{"-length", "6", "-window", "8"}, "-length = 6, want more than -window = 8"},
		{[]string{"-window", "400000000"}, "-window = 400000000"},
		{[]string{"-context", "99999999999"}, "-context = 99999999999"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and a message containing %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// One-shot compression in the chunked experiment ("whole") is the budget
// experiment's run: the same KL, agreement and bytes kept.
func TestChunkedWholeIsOneShot(t *testing.T) {
	m, tok, _ := testModel(t)
	ps, err := generatePrompts(m, tok, 1, 120, 5)
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	s := testSettings(tok, "lava", "h2o", "cake")
	base, logits0, ref, err := prepare(m, p, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.entries {
		one, err := evalCell(m, base, logits0, p, ref, e, 32, s)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := chunkedRun(m, p, ref, logSoftmax(logits0), e, 32, 0, s)
		if err != nil {
			t.Fatal(err)
		}
		if whole.kl != one.kl || whole.agree != one.agree || whole.kept != one.kept || whole.klFirst != 0 || whole.peak != float64(len(p.tokens)) {
			t.Errorf("%s: whole prompt in one chunk: KL %g, agreement %g, kept %d, c₀ KL %g, peak %.1f; one-shot KL %g, agreement %g, kept %d, want equal, 0, %d",
				e.name, whole.kl, whole.agree, whole.kept, whole.klFirst, whole.peak, one.kl, one.agree, one.kept, len(p.tokens))
		}
		chunk, err := chunkedRun(m, p, ref, logSoftmax(logits0), e, 32, 16, s)
		if err != nil {
			t.Fatal(err)
		}
		if chunk.peak > 32+16 || !(chunk.klFirst > 0) {
			t.Errorf("%s: chunks of 16 at B = 32: peak %.1f entries per head, c₀ KL %g; want ≤ 48 and > 0", e.name, chunk.peak, chunk.klFirst)
		}
	}
}

// A long generation stays within the budget plus the slack (plus the step
// being appended) at every step, and the full reference grows by one
// entry per head per step.
func TestLongBounded(t *testing.T) {
	m, tok, _ := testModel(t)
	ps, err := generatePrompts(m, tok, 2, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	ls := longSettings{budget: 24, slack: 6, promptLen: 16, steps: 60, window: 8, jobs: 2, bos: tok.BOS, eos: tok.EOS}
	for _, k := range []string{"lava", "h2o", "tova", "streamingllm"} {
		p, _ := lava.PolicyByName(k)
		ls.entries = append(ls.entries, entry{key: k, name: p.Name(), policy: p})
	}
	res, err := evaluateLong(m, ps, ls, func(int, int, string) {})
	if err != nil {
		t.Fatal(err)
	}
	perToken := int64(m.Layers * m.KVHeads * 2 * m.HeadDim * 4)
	for p := range ps {
		if got, want := res.refs[p].bytes[ls.steps-1], int64(16+ls.steps)*perToken; got != want {
			t.Errorf("prompt %d: full cache %d bytes after %d steps, want %d", p, got, ls.steps, want)
		}
		for e, en := range ls.entries {
			r := res.runs[p][e]
			if limit := int64(24+6+1) * perToken; r.peak > limit {
				t.Errorf("prompt %d, %s: peak %d bytes, want ≤ %d", p, en.name, r.peak, limit)
			}
			if r.kl[0] != 0 || !r.agree[0] {
				t.Errorf("prompt %d, %s: the first step, before any eviction, has KL %g", p, en.name, r.kl[0])
			}
		}
	}
}

// The streaming experiments write their reports and plots, and not the
// budget experiment's.
func TestStreamReportsTiny(t *testing.T) {
	_, _, path := testModel(t)
	dir := t.TempDir()
	args := []string{"-model", path, "-experiments", "chunked,long", "-n", "2", "-T", "8", "-length", "100", "-chunks", "whole,16",
		"-chunk-budgets", "24", "-chunk-policies", "lava,cake", "-long-policies", "lava,tova", "-long-prompt", "16", "-long-T", "40",
		"-long-budget", "20", "-slack", "4", "-out", dir}
	var stderr bytes.Buffer
	if code := run(args, io.Discard, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	for name, wants := range map[string][]string{
		"chunked.md": {"go run ./eval -model", "| chunk 16 | whole (one-shot) |", "Paired difference, chunked − one-shot, B = 24", "## KL of the prompt's last logits", "| CAKE |"},
		"long.md":    {"## KL(full ‖ bounded) by position", "## Ranking by KL", "## Cache memory", "| TOVA |", "decode slack S = 4"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !bytes.Contains(b, []byte(w)) {
				t.Errorf("%s lacks %q", name, w)
			}
		}
	}
	for _, f := range []string{"chunked-kl.png", "chunked-kl.svg", "long-kl.png", "long-bytes.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "eval.md")); err == nil {
		t.Error("eval.md written without the budgets experiment")
	}
}

func TestStreamFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-experiments", "budgets,nope"}, `-experiments: "nope"`},
		{[]string{"-experiments", "chunked", "-chunks", "0"}, `-chunks: "0"`},
		{[]string{"-experiments", "chunked", "-chunk-budgets", "4"}, "-chunk-budgets"},
		{[]string{"-experiments", "chunked", "-chunk-policies", "x"}, "-chunk-policies"},
		{[]string{"-experiments", "long", "-slack", "-1"}, "-slack = -1"},
		{[]string{"-experiments", "long", "-long-T", "500"}, "-long-T = 500"},
		{[]string{"-experiments", "long", "-long-budget", "8"}, "-long-budget = 8"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and a message containing %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// One policy at one budget: the tables are written, and the plots (whose
// log axes have a single budget) do not fail the run.
func TestOnePolicyOneBudget(t *testing.T) {
	modelfile.PathForTest(t)
	dir := t.TempDir()
	var stderr bytes.Buffer
	args := []string{"-policies", "lava", "-budgets", "32", "-n", "2", "-T", "8", "-length", "60", "-out", dir}
	if code := run(args, io.Discard, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "eval.md")); err != nil {
		t.Fatal(err)
	}
}

// The storage experiment writes storage.md with a row for every policy in
// every type, the frontier and a plot per policy, and not the budget
// experiment's report.
func TestStorageReportTiny(t *testing.T) {
	_, _, path := testModel(t)
	dir := t.TempDir()
	args := []string{"-model", path, "-experiments", "storage", "-n", "2", "-T", "8", "-length", "100", "-budgets", "16,32",
		"-storage-types", "f16,q8_0,q4_0,q8_0/q4_0", "-storage-policies", "lava,snapkv", "-out", dir}
	var stderr bytes.Buffer
	if code := run(args, io.Discard, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "storage.md"))
	if err != nil {
		t.Fatal(err)
	}
	wants := []string{"go run ./eval -model", "## KL(float32 full ‖ compressed)", "## Top-1 agreement", "## Long-range recall: log-probability drop",
		"## Long-range recall: top-1 kept", "## Key/value bytes kept", "## KL of the prompt's last logits", "## Equal-bytes frontier", "### LAVa", "### SnapKV",
		"| f32 LAVa B = 32 |", "| f32 full cache |", "## What this model can and cannot show", "| B = 16 | B = 32 |", "Paired difference, type − float32",
		// The bytes of the uncompressed caches: 32, 16, 10 and 6 bytes per
		// row of 8 against float32's 32.
		"| full cache, f32 | 100.00 ± 0.00 | 100.00 ± 0.00 |", "| full cache, f16 | 50.00 ± 0.00 |", "| full cache, q8_0 | 31.25 ± 0.00 |",
		"| full cache, q4_0 | 18.75 ± 0.00 |", "| full cache, q8_0/q4_0 | 25.00 ± 0.00 |"}
	for _, e := range []string{"full cache", "LAVa", "SnapKV"} {
		for _, ty := range []string{"f32", "f16", "q8_0", "q4_0", "q8_0/q4_0"} {
			wants = append(wants, fmt.Sprintf("| %s, %s |", e, ty))
		}
	}
	for _, w := range wants {
		if !bytes.Contains(md, []byte(w)) {
			t.Errorf("storage.md lacks %q", w)
		}
	}
	for _, f := range []string{"storage-kl.png", "storage-kl.svg", "storage-kl-snapkv.png", "storage-kl-snapkv.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "eval.md")); err == nil {
		t.Error("eval.md written without the budgets experiment")
	}
}

// Every storage type keeps exactly its row bytes per entry: at every
// budget the full cache of q8_0 holds 10/32 of float32's bytes, and SnapKV
// the same entries' worth; the float32 rows are the budget experiment's
// runs; quantisation alone changes the output, float32 alone does not.
func TestStorageBytes(t *testing.T) {
	m, tok, _ := testModel(t)
	ps, err := generatePrompts(m, tok, 2, 120, 9)
	if err != nil {
		t.Fatal(err)
	}
	s := testSettings(tok)
	s.budgets = []int{16, 32}
	o := options{storageTypes: "f16,q8_0,q4_0,q8_0/q4_0,f32/q4_0", storagePolicies: "lava,snapkv"}
	ss, err := o.storageSettings()
	if err != nil {
		t.Fatal(err)
	}
	res, err := evaluateStorage(m, ps, s, ss, func(int, int, string) {})
	if err != nil {
		t.Fatal(err)
	}
	// Bytes per row of HeadDim = 8: keys and values.
	rowBytes := map[lava.Element]int64{lava.Float32: 32, lava.Float16: 16, lava.Q8_0: 10, lava.Q4_0: 6}
	for p := range ps {
		for ti, ty := range ss.types {
			for e, en := range ss.entries {
				for b, budget := range s.budgets {
					c, f := res.cells[p][ti][e][b], res.cells[p][0][e][b]
					if en.full {
						if want := f.kept * (rowBytes[ty.k] + rowBytes[ty.v]) / 64; c.kept != want || c.full != want {
							t.Errorf("prompt %d, %v full cache at B = %d: %d bytes kept of %d, want %d (%d + %d of float32's 64 per entry)",
								p, ty, budget, c.kept, c.full, want, rowBytes[ty.k], rowBytes[ty.v])
						}
					}
					// Whole entries; SnapKV keeps B per head whatever the
					// scores, LAVa's allocation follows them, so the type
					// can move its count.
					per := rowBytes[ty.k] + rowBytes[ty.v]
					if c.kept%per != 0 {
						t.Errorf("prompt %d, %v %s at B = %d: %d bytes kept, not whole entries of %d bytes", p, ty, en.name, budget, c.kept, per)
					}
					if en.key == "snapkv" && c.kept*64 != f.kept*per {
						t.Errorf("prompt %d, %v %s at B = %d: %d bytes kept, float32 %d; want %d/64 of it", p, ty, en.name, budget, c.kept, f.kept, per)
					}
				}
			}
			if full := res.cells[p][ti][0][0]; (ty == storagePair{}) != (full.kl == 0 && res.klFirst[p][ti] == 0) {
				t.Errorf("prompt %d, %v full cache: KL %g, c₀ KL %g; want 0 for float32 only", p, ty, full.kl, res.klFirst[p][ti])
			}
		}
		base, logits0, ref, err := prepare(m, ps[p], s)
		if err != nil {
			t.Fatal(err)
		}
		for e, en := range ss.entries[1:] {
			c, err := evalCell(m, base, logits0, ps[p], ref, en, 32, s)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.cells[p][0][e+1][1]; got.kl != c.kl || got.kept != c.kept {
				t.Errorf("prompt %d, %s at B = 32: float32 storage KL %g, %d bytes; the budget experiment's %g, %d", p, en.name, got.kl, got.kept, c.kl, c.kept)
			}
		}
	}
}

func TestStorageFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-experiments", "storage", "-storage-types", "f16,q3"}, `-storage-types: "q3"`},
		{[]string{"-experiments", "storage", "-storage-types", "q8_0/x"}, `-storage-types: "q8_0/x"`},
		{[]string{"-experiments", "storage", "-storage-types", "q8_0/q4_0/f16"}, `-storage-types: "q8_0/q4_0/f16"`},
		{[]string{"-experiments", "storage", "-storage-types", "f16,float16"}, `-storage-types: "float16" given twice`},
		{[]string{"-experiments", "storage", "-storage-policies", "lava,nope"}, `-storage-policies: "nope"`},
		{[]string{"-experiments", "storage", "-budgets", "4"}, "-budgets"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and a message containing %q", c.args, code, stderr.String(), c.want)
		}
	}
}
