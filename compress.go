package lava

import (
	"math"
	"slices"
)

// Report describes what one Compress did.
type Report struct {
	// Layers has one entry per layer, in order.
	Layers []LayerReport
	// BytesBefore and BytesAfter are the key and value bytes the cache
	// held before and after this Compress (see KVCache.Bytes).
	BytesBefore, BytesAfter int64
	// Evicted tells whether this Compress scored any layer and trimmed
	// the scored layers to their shares: it does not while the cache holds
	// at most Budget entries per head on average, nor when nothing was
	// appended since the last one.
	Evicted bool
}

// LayerReport describes one layer after a Compress.
type LayerReport struct {
	// Scored tells whether this Compress scored the layer (it had received
	// tokens since it was last scored).
	Scored bool
	// Ranked tells whether the layer has been scored by any Compress and
	// so takes part in the budget split.
	Ranked bool
	// Tokens is the number of tokens appended to the layer when it was
	// last scored.
	Tokens int
	// Entropy is the normalised entropy of the layer's latest scores,
	// which sets its share of the total budget.
	Entropy float64
	// Budget is b_l, the layer's average number of candidate entries
	// (window excluded) per KV head, or 0 for a layer never scored. It may
	// exceed the candidates, which are then kept whole.
	Budget int
	// Kept is the number of entries each KV head holds, window included.
	Kept []int
}

// Compress evicts entries so that the cache holds on average Budget
// entries per KV head per layer, ranking them with the configured Policy
// (LAVa by default). It may run at any time: after a whole prompt, after
// each layer of it (the cascade), after each chunk of a long prompt, after
// a later conversation turn, or while decoding (see Config.DecodeSlack).
//
// While the layers that hold tokens hold at most Budget entries per head on
// average, Compress evicts nothing. Otherwise it scores every layer that
// received tokens since it was last scored, over what that layer holds:
// the last Window tokens appended are the window, whose queries score the
// held entries before them (the candidates). It then splits the total
// budget L·(Budget−Window) among all scored layers (by the entropy of their
// latest scores for LAVa), and trims each scored layer to its share: a
// newly scored layer from its fresh ranking, any other by keeping a prefix
// of its ranking when its share shrank. Evicted entries never come back;
// positions are never renumbered. With LAVa the candidates of a layer are
// ranked jointly over all KV heads, and every head keeps the window plus
// the candidates it wins.
//
// One Compress after one whole prompt, and the cascade over one prompt,
// give exactly the paper's result. Compress with nothing new appended
// changes nothing.
//
// Compress fails, leaving the cache unchanged, if a layer to score lacks the
// queries scoring needs or holds NaN or infinite data.
func (c *KVCache) Compress() (Report, error) {
	before := c.Bytes()
	p := &c.cfg.Policy
	w := p.windowOf(&c.cfg)
	scored := map[int]layerScores{}
	if c.heldPerHead() > float64(c.cfg.Budget) {
		// Check and score every new layer before changing anything.
		s := &scratch{c: c}
		for l := range c.layers {
			L := &c.layers[l]
			if !L.fresh() || L.tokens <= w {
				continue // nothing new, or no candidates before the window
			}
			switch {
			case p.queries == queriesWindow && L.windowQueries(w) < w:
				return Report{}, invalidf("Compress: layer %d has the queries of only its last %d tokens, want the last %d (give them to Append or Attend)", l, L.windowQueries(w), w)
			case p.queries == queriesAll && !L.allQueries():
				return Report{}, invalidf("Compress: layer %d: %s needs the queries of every token, and some were not given to Append or Attend", l, p.name)
			}
			ls, err := c.scoreLayer(s, l)
			if err != nil {
				return Report{}, err
			}
			scored[l] = ls
		}
	}
	c.apply(scored)
	r := c.report(before, scored)
	r.Evicted = len(scored) > 0
	return r, nil
}

// heldPerHead is the average number of entries per KV head over the layers
// that hold tokens.
func (c *KVCache) heldPerHead() float64 {
	held, holding := 0, 0
	for l := range c.layers {
		L := &c.layers[l]
		if L.tokens == 0 {
			continue
		}
		holding++
		for kv := range L.heads {
			held += L.heads[kv].len()
		}
	}
	if holding == 0 {
		return 0
	}
	return float64(held) / float64(holding*c.cfg.KVHeads)
}

// apply ranks the layers whose candidate scores are in scored, splits the
// budget over them and the layers ranked before, and trims every ranked
// layer whose share is below what it holds.
func (c *KVCache) apply(scored map[int]layerScores) {
	p := &c.cfg.Policy
	for l, ls := range scored {
		L := &c.layers[l]
		L.ranked, L.scoredAt, L.stats = true, L.tokens, ls.layerStats
		L.cand, L.off = ls.cand, ls.off
		L.winners = nil
		if p.heads == JointHeads {
			L.winners = rankAll(ls.s)
		}
		for kv := range L.heads {
			L.heads[kv].order = rankRows(ls.s[ls.off[kv]:ls.off[kv+1]])
		}
		L.budget = math.MaxInt
	}
	if len(scored) > 0 {
		ids, b := c.budgets()
		for i, l := range ids {
			if L := &c.layers[l]; b[i] < L.budget {
				c.trim(L, b[i])
			}
		}
	}
	for l := range c.layers {
		L := &c.layers[l]
		L.limit = c.decodeLimit(L)
	}
}

// candidates is a ranked layer's average number of candidates per head when
// it was last scored, rounded up: the most its budget can use.
func (c *KVCache) candidates(L *layer) int {
	sum := 0
	for _, m := range L.cand {
		sum += m
	}
	return (sum + c.cfg.KVHeads - 1) / c.cfg.KVHeads
}

// budgets returns the ranked layers and their per-head candidate budgets
// under the policy's layer allocation.
func (c *KVCache) budgets() (ids, b []int) {
	p := &c.cfg.Policy
	w := p.windowOf(&c.cfg)
	bbar := c.cfg.Budget - w
	var e, pref []float64
	var m []int
	final := true
	for l := range c.layers {
		L := &c.layers[l]
		if L.tokens == 0 {
			final = false
		}
		if !L.ranked {
			continue
		}
		ids, m = append(ids, l), append(m, c.candidates(L))
		e = append(e, L.stats.entropy)
		pref = append(pref, math.Log(L.stats.dispersion)/p.tau1+math.Log(L.stats.shift)/p.tau2)
	}
	total := c.cfg.Layers * bbar
	switch p.layers {
	case EntropyLayers:
		return ids, layerBudgets(e, m, total, c.cfg.Redistribute)
	case cakeLayers:
		return ids, cakeBudgets(preferences(pref), m, total, final)
	}
	b = make([]int, len(ids))
	for i, l := range ids {
		b[i] = bbar
		if p.layers == pyramidLayers {
			b[i] = pyramidBudget(bbar, p.beta, l, c.cfg.Layers, m[i])
		}
	}
	return ids, b
}

// trim cuts a ranked layer down to the per-head budget b. With joint head
// budgets the layer's top Hkv·b candidates decide how many each head keeps
// (with the policy's floor); otherwise every head keeps b. Each head keeps
// its best that many. A budget that only shrinks keeps a prefix of each
// head's ranking, so trimming again gives the same result as trimming once.
func (c *KVCache) trim(L *layer, b int) {
	L.budget = b
	p := &c.cfg.Policy
	caps := make([]int, len(L.heads))
	if p.heads == JointHeads {
		if len(L.heads)*b >= len(L.winners) {
			return // kept whole
		}
		L.winners = L.winners[:len(L.heads)*b]
		if cap(L.winners) > 2*len(L.winners) { // free the ranking of a layer first kept whole
			L.winners = slices.Clone(L.winners)
		}
		for _, s := range L.winners {
			kv, _ := slices.BinarySearch(L.off, int(s.idx)+1)
			caps[kv-1]++
		}
		caps = headCaps(caps, b, L.cand, c.cfg.Budget, p.floor, p.alpha)
	} else {
		if b >= slices.Max(L.cand) {
			return // kept whole
		}
		for kv := range caps {
			caps[kv] = b
		}
	}
	var keep, newRow []int32
	for kv := range L.heads {
		h := &L.heads[kv]
		ranked := len(h.order)
		top := h.order[:min(caps[kv], ranked)]
		// Mark the kept ranked rows, then number them in position order.
		newRow = slices.Grow(newRow[:0], ranked)[:ranked]
		for i := range newRow {
			newRow[i] = -1
		}
		for _, r := range top {
			newRow[r] = 0
		}
		keep = keep[:0]
		for r, mark := range newRow {
			if mark == 0 {
				newRow[r] = int32(len(keep))
				keep = append(keep, int32(r))
			}
		}
		for i, r := range top {
			top[i] = newRow[r]
		}
		h.order = top
		for i := ranked; i < h.len(); i++ {
			keep = append(keep, int32(i))
		}
		c.compact(h, keep)
	}
}

// compact keeps the rows idx (strictly increasing) of h, with room for
// DecodeReserve more. Storage moves to a new array when at least half of it
// would be free, so that evicted memory is returned to the Go heap, or when
// it lacks the reserve; otherwise rows move down in place and the capacity
// serves later decode Appends.
func (c *KVCache) compact(h *head, idx []int32) {
	d, size := c.cfg.HeadDim, len(idx)+c.cfg.DecodeReserve
	room := min(cap(h.pos), h.k.capRows(d), h.v.capRows(d))
	fresh := 2*size <= room || size > room
	h.k.gather(idx, d, size, fresh)
	h.v.gather(idx, d, size, fresh)
	h.pos = gatherElems(h.pos, idx, size, fresh)
	if h.heavy != nil {
		h.heavy = gatherElems(h.heavy, idx, size, fresh)
	}
	if fresh {
		h.order = slices.Clone(h.order)
	}
}

func (c *KVCache) report(before int64, scored map[int]layerScores) Report {
	r := Report{Layers: make([]LayerReport, len(c.layers)), BytesBefore: before, BytesAfter: c.Bytes()}
	for l := range c.layers {
		L := &c.layers[l]
		_, now := scored[l]
		lr := LayerReport{Scored: now, Ranked: L.ranked}
		if L.ranked {
			lr.Tokens, lr.Entropy, lr.Budget = L.scoredAt, L.stats.entropy, L.budget
		}
		lr.Kept = make([]int, len(L.heads))
		for kv := range L.heads {
			lr.Kept[kv] = L.heads[kv].len()
		}
		r.Layers[l] = lr
	}
	return r
}
