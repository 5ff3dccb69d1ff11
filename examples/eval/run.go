package main

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/llama"
	"github.com/lavakv/lava/examples/sample"
)

// entry is one row of the report: a policy under its flag name, or the
// full cache.
type entry struct {
	key    string // as -policies spells it; "full" for the full cache
	name   string // as the report prints it
	policy lava.Policy
	full   bool
}

// settings are what every prompt is evaluated with.
type settings struct {
	budgets []int
	window  int
	steps   int // T, the teacher-forced continuation tokens measured
	entries []entry
	workers int
	// bos and eos end a story: no copy step is counted after the
	// continuation emits one (see untilStoryEnd).
	bos, eos int
	// experiments are the names of the experiments to run, with the
	// settings of the streaming ones.
	experiments []string
	chunked     chunkedSettings
	long        longSettings
	storage     storageSettings
	// elements is the storage type of the caches prefill and evalCell
	// build; the zero value is float32 keys and values, what every
	// experiment but storage uses.
	elements storagePair
}

// run tells whether the experiment named is to run.
func (s settings) run(name string) bool { return slices.Contains(s.experiments, name) }

// cell is what one policy at one budget did on one prompt.
type cell struct {
	kl, agree   float64 // mean KL(full ‖ compressed) and top-1 agreement over the T steps
	diverge     int     // steps before the first top-1 disagreement, T if none
	recallDrop  float64 // mean log p_full − log p_comp over the copy steps; NaN if none
	recallTop1  float64 // fraction of copy steps whose top-1 equals the full model's; NaN if none
	attnErr     []float64
	kept, full  int64   // key/value bytes after and before Compress
	expectedLog float64 // log p of the expected continuation; NaN if none
}

// reference is the full cache's behaviour on one prompt, which every
// compressed cache is compared with.
type reference struct {
	// cont is c_0..c_T, the full model's greedy continuation. c_0 comes
	// from the prefill's logits, which no compression can change, so the
	// measured steps are k = 1..T, whose distributions logP[k−1] follow
	// feeding c_{k−1}.
	cont        []int
	logP        [][]float64
	attn        [][]float32 // each layer's attention output at the first step
	copies      []int       // the long-range copy steps k of cont
	expectedLog float64     // NaN if the prompt has no expected continuation
}

// prefill runs the prompt once into a cache, stored as s.elements, that is
// never compressed itself; every policy and budget then compresses its own copy
// (KVCache.CloneWith). The cache uses H2O, the one policy whose copies need
// a source that accumulated attention while appending; copies under other
// policies drop those sums.
func prefill(m *llama.Model, p prompt, s settings) (*lava.KVCache, []float32, error) {
	cfg := m.CacheConfig(len(p.tokens)+1, s.window)
	cfg.Policy = lava.H2O()
	cfg.KeyElement, cfg.ValueElement = s.elements.k, s.elements.v
	cache, err := lava.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	seq, err := m.NewSequence(cache)
	if err != nil {
		return nil, nil, err
	}
	logits, err := seq.Prefill(p.tokens)
	if err != nil {
		return nil, nil, err
	}
	return cache, slices.Clone(logits), nil
}

// prepare prefills p once (see prefill) and decodes the full cache's
// reference continuation over it.
func prepare(m *llama.Model, p prompt, s settings) (*lava.KVCache, []float32, reference, error) {
	base, logits0, err := prefill(m, p, s)
	if err != nil {
		return nil, nil, reference{}, err
	}
	ref, err := fullReference(m, base, logits0, p, s)
	if err != nil {
		return nil, nil, reference{}, fmt.Errorf("full cache: %w", err)
	}
	return base, logits0, ref, nil
}

// fullReference decodes T greedy steps over an uncompressed copy of base.
func fullReference(m *llama.Model, base *lava.KVCache, logits0 []float32, p prompt, s settings) (reference, error) {
	seq, err := m.Continue(base.Clone())
	if err != nil {
		return reference{}, err
	}
	r := reference{cont: []int{sample.Argmax(logits0)}, expectedLog: math.NaN()}
	for k := 1; k <= s.steps; k++ {
		logits, err := seq.Step(r.cont[k-1])
		if err != nil {
			return reference{}, err
		}
		if k == 1 {
			r.attn = attention(seq, m.Layers)
		}
		lp := logSoftmax(logits)
		r.logP = append(r.logP, lp)
		r.cont = append(r.cont, argmax(lp))
	}
	r.copies = copySteps(p.tokens, untilStoryEnd(r.cont, s.bos, s.eos), s.window)
	if p.expected != nil {
		if r.expectedLog, err = expectedLogProb(m, base.Clone(), logits0, p.expected); err != nil {
			return reference{}, err
		}
	}
	return r, nil
}

func attention(seq *llama.Sequence, layers int) [][]float32 {
	a := make([][]float32, layers)
	for l := range a {
		a[l] = slices.Clone(seq.Attention(l))
	}
	return a
}

// expectedLogProb returns log p(expected | prompt), teacher-forced over
// cache, which holds the prompt; logits0 are the prompt's last logits.
func expectedLogProb(m *llama.Model, cache *lava.KVCache, logits0 []float32, expected []int) (float64, error) {
	seq, err := m.Continue(cache)
	if err != nil {
		return 0, err
	}
	logits := logits0
	var sum float64
	for j, t := range expected {
		if j > 0 {
			if logits, err = seq.Step(expected[j-1]); err != nil {
				return 0, err
			}
		}
		sum += logSoftmax(logits)[t]
	}
	return sum, nil
}

// evalCell compresses a copy of base under e at budget (ignored for the
// full cache) and measures it against ref.
func evalCell(m *llama.Model, base *lava.KVCache, logits0 []float32, p prompt, ref reference, e entry, budget int, s settings) (cell, error) {
	cfg := m.CacheConfig(budget, s.window)
	cfg.Policy = e.policy
	cfg.KeyElement, cfg.ValueElement = s.elements.k, s.elements.v
	if e.full {
		// A budget above the prompt keeps every layer whole.
		cfg.Budget = max(len(p.tokens), s.window) + 1
	}
	comp, err := base.CloneWith(cfg)
	if err != nil {
		return cell{}, err
	}
	rep, err := comp.Compress()
	if err != nil {
		return cell{}, err
	}
	c := cell{kept: rep.BytesAfter, full: rep.BytesBefore, expectedLog: math.NaN()}
	if p.expected != nil {
		if c.expectedLog, err = expectedLogProb(m, comp.Clone(), logits0, p.expected); err != nil {
			return cell{}, err
		}
	}
	seq, err := m.Continue(comp)
	if err != nil {
		return cell{}, err
	}
	return c, teacherForce(seq, ref, s, &c)
}

// teacherForce feeds seq, which holds a compressed prompt, the full
// cache's continuation ref.cont and fills c's measures of the T steps:
// KL, top-1 agreement, divergence, recall and the first step's attention
// error.
func teacherForce(seq *llama.Sequence, ref reference, s settings, c *cell) error {
	agree := make([]bool, s.steps)
	top1 := make([]int, s.steps+1)
	var klSum float64
	drop := make([]float64, s.steps+1)
	for k := 1; k <= s.steps; k++ {
		logits, err := seq.Step(ref.cont[k-1])
		if err != nil {
			return err
		}
		if k == 1 {
			c.attnErr = make([]float64, len(ref.attn))
			for l := range c.attnErr {
				c.attnErr[l] = relL1(ref.attn[l], seq.Attention(l))
			}
		}
		lp := logSoftmax(logits)
		full := ref.logP[k-1]
		klSum += kl(full, lp)
		top1[k] = argmax(lp)
		agree[k-1] = top1[k] == argmax(full)
		drop[k] = full[ref.cont[k]] - lp[ref.cont[k]]
	}
	c.kl = klSum / float64(s.steps)
	n := 0
	for _, a := range agree {
		if a {
			n++
		}
	}
	c.agree = float64(n) / float64(s.steps)
	c.diverge = firstDivergence(agree)
	c.recallDrop, c.recallTop1 = math.NaN(), math.NaN()
	if len(ref.copies) > 0 {
		var d, hit float64
		for _, k := range ref.copies {
			d += drop[k]
			if agree[k-1] {
				hit++
			}
		}
		c.recallDrop = d / float64(len(ref.copies))
		c.recallTop1 = hit / float64(len(ref.copies))
	}
	return nil
}

// results holds every cell: [prompt][entry][budget].
type results struct {
	refs  []reference
	cells [][][]cell
}

// evaluate runs every prompt, entry and budget, reporting progress after
// each unit of work (a prompt's prefill and reference, or one cell).
func evaluate(m *llama.Model, prompts []prompt, s settings, progress func(done, total int, what string)) (results, error) {
	cnt := &counter{total: len(prompts) * (len(s.entries)*len(s.budgets) + 1), progress: progress}
	step := cnt.step
	res := results{refs: make([]reference, len(prompts)), cells: make([][][]cell, len(prompts))}
	for i, p := range prompts {
		base, logits0, ref, err := prepare(m, p, s)
		if err != nil {
			return results{}, fmt.Errorf("prompt %d: %w", i+1, err)
		}
		res.refs[i] = ref
		step(fmt.Sprintf("prompt %d/%d", i+1, len(prompts)))

		cells := make([][]cell, len(s.entries))
		for e := range cells {
			cells[e] = make([]cell, len(s.budgets))
		}
		err = forEach(len(s.entries)*len(s.budgets), s.workers, func(j int) error {
			e, b := s.entries[j/len(s.budgets)], s.budgets[j%len(s.budgets)]
			defer step(fmt.Sprintf("prompt %d/%d %s B=%d", i+1, len(prompts), e.name, b))
			// The full cache does not depend on the budget: measured
			// once, shown in every column.
			if e.full && j%len(s.budgets) != 0 {
				return nil
			}
			var err error
			if cells[j/len(s.budgets)][j%len(s.budgets)], err = evalCell(m, base, logits0, p, ref, e, b, s); err != nil {
				return fmt.Errorf("prompt %d: %s at budget %d: %w", i+1, e.name, b, err)
			}
			return nil
		})
		if err != nil {
			return results{}, err
		}
		for e, en := range s.entries {
			if en.full {
				for b := range cells[e] {
					cells[e][b] = cells[e][0]
				}
			}
		}
		res.cells[i] = cells
	}
	return res, nil
}

// forEach calls f(0) … f(n−1) on up to workers goroutines and returns the
// error of the lowest j whose call failed, after all calls have returned.
func forEach(n, workers int, f func(j int) error) error {
	jobs := make(chan int)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for j := range jobs {
				errs[j] = f(j)
			}
		})
	}
	for j := range n {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
