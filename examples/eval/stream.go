package main

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/llama"
)

// This file runs the two streaming experiments: a chunked prefill against
// one-shot compression at equal budget, and a long generation in a cache
// bounded by the budget plus a decode slack.

// counter reports progress after each unit of work, from any goroutine.
type counter struct {
	mu          sync.Mutex
	done, total int
	progress    func(done, total int, what string)
}

func (c *counter) step(what string) {
	c.mu.Lock()
	c.done++
	c.progress(c.done, c.total, what)
	c.mu.Unlock()
}

// chunkedSettings select the chunked-prefill experiment's runs.
type chunkedSettings struct {
	chunks  []int // prefill chunk sizes; 0 is the whole prompt in one chunk
	budgets []int
	entries []entry // policies; no full cache
}

// chunkedCell is one policy at one budget and chunk size on one prompt: the
// measures of the budget experiment, with kept the bytes after the prefill
// and full the full prompt's, plus what only a chunked prefill changes.
type chunkedCell struct {
	cell
	// klFirst is KL(full ‖ chunked) of the prompt's last logits, those of
	// c₀: one-shot compression cannot change them, a chunked prefill can.
	klFirst float64
	// peak is the most the cache held during the prefill, in entries per
	// KV head per layer on average.
	peak float64
}

// chunkedResults holds every run: [prompt][entry][budget][chunk].
type chunkedResults struct {
	refs  []reference
	cells [][][][]chunkedCell
}

// evaluateChunked prefills every prompt in chunks under every policy,
// budget and chunk size, compressing after each chunk, and teacher-forces
// the full cache's greedy continuation over the result.
func evaluateChunked(m *llama.Model, prompts []prompt, s settings, cs chunkedSettings, progress func(done, total int, what string)) (chunkedResults, error) {
	nb, nc := len(cs.budgets), len(cs.chunks)
	per := len(cs.entries) * nb * nc
	cnt := &counter{total: len(prompts) * (per + 1), progress: progress}
	res := chunkedResults{refs: make([]reference, len(prompts)), cells: make([][][][]chunkedCell, len(prompts))}
	for i, p := range prompts {
		_, logits0, ref, err := prepare(m, p, s)
		if err != nil {
			return chunkedResults{}, fmt.Errorf("prompt %d: %w", i+1, err)
		}
		res.refs[i] = ref
		cnt.step(fmt.Sprintf("prompt %d/%d", i+1, len(prompts)))
		lp0 := logSoftmax(logits0)
		cells := make([][][]chunkedCell, len(cs.entries))
		for e := range cells {
			cells[e] = make([][]chunkedCell, nb)
			for b := range cells[e] {
				cells[e][b] = make([]chunkedCell, nc)
			}
		}
		err = forEach(per, s.workers, func(j int) error {
			e, b, c := j/(nb*nc), j/nc%nb, j%nc
			en, budget, chunk := cs.entries[e], cs.budgets[b], cs.chunks[c]
			defer cnt.step(fmt.Sprintf("prompt %d/%d %s B=%d chunk %s", i+1, len(prompts), en.name, budget, chunkName(chunk)))
			var err error
			if cells[e][b][c], err = chunkedRun(m, p, ref, lp0, en, budget, chunk, s); err != nil {
				return fmt.Errorf("prompt %d: %s at budget %d, chunk %s: %w", i+1, en.name, budget, chunkName(chunk), err)
			}
			return nil
		})
		if err != nil {
			return chunkedResults{}, err
		}
		res.cells[i] = cells
	}
	return res, nil
}

func chunkName(chunk int) string {
	if chunk == 0 {
		return "whole"
	}
	return fmt.Sprint(chunk)
}

// chunkedRun prefills p in chunks of chunk tokens (0: one chunk) into a
// fresh cache under e at budget, compressing after each, and measures the
// continuation against ref; lp0 is the full prefill's last log-softmax.
func chunkedRun(m *llama.Model, p prompt, ref reference, lp0 []float64, e entry, budget, chunk int, s settings) (chunkedCell, error) {
	cfg := m.CacheConfig(budget, s.window)
	cfg.Policy = e.policy
	cache, err := lava.New(cfg)
	if err != nil {
		return chunkedCell{}, err
	}
	seq, err := m.NewSequence(cache)
	if err != nil {
		return chunkedCell{}, err
	}
	if chunk == 0 {
		chunk = len(p.tokens)
	}
	logits, _, err := seq.Extend(p.tokens, chunk)
	if err != nil {
		return chunkedCell{}, err
	}
	perToken := int64(m.Layers*m.KVHeads) * cache.EntryBytes()
	c := chunkedCell{klFirst: kl(lp0, logSoftmax(logits)), peak: float64(seq.PeakBytes()) / float64(perToken)}
	c.kept, c.full = cache.Bytes(), int64(len(p.tokens))*perToken
	c.expectedLog = math.NaN()
	return c, teacherForce(seq, ref, s, &c.cell)
}

// longSettings select the long-generation experiment's runs.
type longSettings struct {
	entries      []entry // policies; no full cache
	budget       int
	slack        int // Config.DecodeSlack
	promptLen    int // tokens per sampled prompt, BOS included
	steps        int // decoded tokens measured
	bos, eos     int
	window, jobs int
}

// longRef is the full cache's greedy continuation of one prompt: cont[0]
// from the prompt's logits, then logP[k−1] after feeding cont[k−1], and the
// full cache's bytes after each step.
type longRef struct {
	cont  []int
	logP  [][]float64
	bytes []int64
}

// longRun is one policy's teacher-forced run: per decoded step k = 1…T, the
// KL from the full cache, top-1 agreement, and the bytes held after it.
type longRun struct {
	kl    []float64
	agree []bool
	bytes []int64
	peak  int64
}

// longResults holds every run: [prompt][entry].
type longResults struct {
	prompts []prompt
	refs    []longRef
	runs    [][]longRun
}

// evaluateLong decodes every prompt's full greedy continuation, then
// teacher-forces it over a cache bounded at the budget with the decode
// slack, under every policy.
func evaluateLong(m *llama.Model, prompts []prompt, ls longSettings, progress func(done, total int, what string)) (longResults, error) {
	cnt := &counter{total: len(prompts) * (len(ls.entries) + 1), progress: progress}
	res := longResults{prompts: prompts, refs: make([]longRef, len(prompts)), runs: make([][]longRun, len(prompts))}
	for i, p := range prompts {
		ref, err := longReference(m, p, ls)
		if err != nil {
			return longResults{}, fmt.Errorf("prompt %d: full cache: %w", i+1, err)
		}
		res.refs[i] = ref
		cnt.step(fmt.Sprintf("prompt %d/%d", i+1, len(prompts)))
		runs := make([]longRun, len(ls.entries))
		err = forEach(len(ls.entries), ls.jobs, func(e int) error {
			defer cnt.step(fmt.Sprintf("prompt %d/%d %s", i+1, len(prompts), ls.entries[e].name))
			var err error
			if runs[e], err = longTeacherForce(m, p, ref, ls.entries[e].policy, ls); err != nil {
				return fmt.Errorf("prompt %d: %s: %w", i+1, ls.entries[e].name, err)
			}
			return nil
		})
		if err != nil {
			return longResults{}, err
		}
		res.runs[i] = runs
	}
	return res, nil
}

// longCache returns a sequence over a new cache under policy with the
// budget and slack given, with the prompt prefilled in one chunk (and
// compressed, which evicts nothing from a prompt within the budget), and
// the prompt's last logits.
func longCache(m *llama.Model, p prompt, policy lava.Policy, budget, slack, window int) (*llama.Sequence, []float32, error) {
	cfg := m.CacheConfig(budget, window)
	cfg.Policy, cfg.DecodeSlack = policy, slack
	cache, err := lava.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	seq, err := m.NewSequence(cache)
	if err != nil {
		return nil, nil, err
	}
	logits, _, err := seq.Extend(p.tokens, len(p.tokens))
	return seq, logits, err
}

func longReference(m *llama.Model, p prompt, ls longSettings) (longRef, error) {
	seq, logits, err := longCache(m, p, lava.LAVa(), len(p.tokens)+ls.steps+1, 0, ls.window)
	if err != nil {
		return longRef{}, err
	}
	r := longRef{cont: []int{argmax(logSoftmax(logits))}}
	for k := 1; k <= ls.steps; k++ {
		logits, err := seq.Step(r.cont[k-1])
		if err != nil {
			return longRef{}, err
		}
		lp := logSoftmax(logits)
		r.logP = append(r.logP, lp)
		r.cont = append(r.cont, argmax(lp))
		r.bytes = append(r.bytes, seq.Cache().Bytes())
	}
	return r, nil
}

func longTeacherForce(m *llama.Model, p prompt, ref longRef, policy lava.Policy, ls longSettings) (longRun, error) {
	seq, _, err := longCache(m, p, policy, ls.budget, ls.slack, ls.window)
	if err != nil {
		return longRun{}, err
	}
	r := longRun{kl: make([]float64, ls.steps), agree: make([]bool, ls.steps), bytes: make([]int64, ls.steps)}
	for k := 1; k <= ls.steps; k++ {
		logits, err := seq.Step(ref.cont[k-1])
		if err != nil {
			return longRun{}, err
		}
		lp := logSoftmax(logits)
		r.kl[k-1] = kl(ref.logP[k-1], lp)
		r.agree[k-1] = argmax(lp) == argmax(ref.logP[k-1])
		r.bytes[k-1] = seq.Cache().Bytes()
	}
	r.peak = seq.PeakBytes()
	return r, nil
}

// storyEnd returns the first step k ≥ 1 whose fed token cont[k−1] ends a
// story (BOS or EOS), or 0 if none does.
func storyEnd(cont []int, bos, eos int) int {
	if k := slices.IndexFunc(cont, func(t int) bool { return t == bos || t == eos }); k >= 0 {
		return k + 1
	}
	return 0
}
