package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/llama"
)

// This file runs the storage experiment: the element type of the cached
// keys and values as one more dimension beside the policy and the budget.

// storagePair is the storage type of a cache's keys and of its values.
type storagePair struct{ k, v lava.Element }

// String is the pair as -storage-types spells it: one name when keys and
// values share the type, k/v otherwise.
func (p storagePair) String() string {
	if p.k == p.v {
		return elementFlagName(p.k)
	}
	return elementFlagName(p.k) + "/" + elementFlagName(p.v)
}

func elementFlagName(e lava.Element) string {
	switch e {
	case lava.Float32:
		return "f32"
	case lava.Float16:
		return "f16"
	}
	return e.String()
}

// storageSettings select the storage experiment's runs; the budgets are
// the budget experiment's.
type storageSettings struct {
	types   []storagePair // float32 first
	entries []entry       // the full cache first, then the policies
}

func (o *options) storageSettings() (storageSettings, error) {
	ss := storageSettings{types: []storagePair{{lava.Float32, lava.Float32}}}
	for _, f := range strings.Split(o.storageTypes, ",") {
		f = strings.TrimSpace(f)
		k, v, mixed := strings.Cut(f, "/")
		if !mixed {
			v = k
		}
		ke, err1 := lava.ElementByName(k)
		ve, err2 := lava.ElementByName(v)
		if err1 != nil || err2 != nil {
			return ss, fmt.Errorf("-storage-types: %q, want f32, f16, q8_0, q4_0 or k/v, keys of type k and values of type v", f)
		}
		p := storagePair{ke, ve}
		if p == ss.types[0] {
			continue // always there
		}
		if slices.Contains(ss.types, p) {
			return ss, fmt.Errorf("-storage-types: %q given twice", f)
		}
		ss.types = append(ss.types, p)
	}
	es, err := policyEntries("-storage-policies", o.storagePolicies)
	if err != nil {
		return ss, err
	}
	ss.entries = append([]entry{{key: "full", name: "full cache", full: true}}, es...)
	return ss, nil
}

// storageResults holds every cell, [prompt][type][entry][budget] with the
// full cache's repeated in every budget, and [prompt][type] the KL of the
// prompt's last logits, c₀'s distribution, against the float32 prefill's.
type storageResults struct {
	refs    []reference
	cells   [][][][]cell
	klFirst [][]float64
}

// evaluateStorage prefills every prompt in float32 for the reference
// continuation (see prepare), then in every storage type, and measures
// every entry at every budget over the copies of that type's prefill
// against the float32 reference.
func evaluateStorage(m *llama.Model, prompts []prompt, s settings, ss storageSettings, progress func(done, total int, what string)) (storageResults, error) {
	nt, ne, nb := len(ss.types), len(ss.entries), len(s.budgets)
	cnt := &counter{total: len(prompts) * (nt + nt*ne*nb), progress: progress}
	res := storageResults{refs: make([]reference, len(prompts)), cells: make([][][][]cell, len(prompts)), klFirst: make([][]float64, len(prompts))}
	for i, p := range prompts {
		f32, logits32, ref, err := prepare(m, p, s)
		if err != nil {
			return storageResults{}, fmt.Errorf("prompt %d: %w", i+1, err)
		}
		res.refs[i] = ref
		lp0 := logSoftmax(logits32)
		// Each type's own prefill: every layer's attention of the prompt
		// reads the keys and values as that type stores them.
		bases, logits := make([]*lava.KVCache, nt), make([][]float32, nt)
		res.klFirst[i] = make([]float64, nt)
		err = forEach(nt, s.workers, func(t int) error {
			defer cnt.step(fmt.Sprintf("prompt %d/%d prefill %v", i+1, len(prompts), ss.types[t]))
			if ss.types[t] == (storagePair{}) {
				bases[t], logits[t] = f32, logits32
				return nil
			}
			st := s
			st.elements = ss.types[t]
			var err error
			if bases[t], logits[t], err = prefill(m, p, st); err != nil {
				return fmt.Errorf("prompt %d: prefill in %v: %w", i+1, ss.types[t], err)
			}
			res.klFirst[i][t] = kl(lp0, logSoftmax(logits[t]))
			return nil
		})
		if err != nil {
			return storageResults{}, err
		}
		cells := make([][][]cell, nt)
		for t := range cells {
			cells[t] = make([][]cell, ne)
			for e := range cells[t] {
				cells[t][e] = make([]cell, nb)
			}
		}
		err = forEach(nt*ne*nb, s.workers, func(j int) error {
			t, e, b := j/(ne*nb), j/nb%ne, j%nb
			en, budget := ss.entries[e], s.budgets[b]
			defer cnt.step(fmt.Sprintf("prompt %d/%d %v %s B=%d", i+1, len(prompts), ss.types[t], en.name, budget))
			// The full cache does not depend on the budget.
			if en.full && b != 0 {
				return nil
			}
			st := s
			st.elements = ss.types[t]
			var err error
			if cells[t][e][b], err = evalCell(m, bases[t], logits[t], p, ref, en, budget, st); err != nil {
				return fmt.Errorf("prompt %d: %v %s at budget %d: %w", i+1, ss.types[t], en.name, budget, err)
			}
			return nil
		})
		if err != nil {
			return storageResults{}, err
		}
		for t := range cells {
			for e, en := range ss.entries {
				if en.full {
					for b := range cells[t][e] {
						cells[t][e][b] = cells[t][e][0]
					}
				}
			}
		}
		res.cells[i] = cells
	}
	return res, nil
}
