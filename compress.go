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
}

// LayerReport describes one layer after a Compress.
type LayerReport struct {
	// Compressed tells whether the layer has been through Compress; layers
	// not yet appended to are not.
	Compressed bool
	// Prompt is the number of tokens the layer held when it was compressed.
	Prompt int
	// Ranked tells whether the layer was scored and evicted from; a layer
	// whose prompt did not exceed Budget is kept whole and is not.
	Ranked bool
	// Entropy is the normalised entropy of the layer's scores, which sets
	// its share of the total budget.
	Entropy float64
	// Budget is b_l, the layer's average number of prefix entries (window
	// excluded) per KV head. It may exceed the prefix, which is then kept
	// whole.
	Budget int
	// Kept is the number of entries each KV head holds, window included.
	Kept []int
}

// Compress evicts entries so that every layer keeps on average Budget
// entries per KV head, ranking tokens with the configured Policy (LAVa by
// default, spec sections 3–5). It scores the layers appended to since the
// last Compress, splits the total budget L·(Budget−Window) among all scored
// layers (by entropy for LAVa), and trims each layer to its share: with
// LAVa the prefix tokens of a layer are ranked jointly over all KV heads,
// and every head keeps the Window most recent tokens plus the prefix tokens
// it wins.
//
// Compress may run once after the whole prompt has been appended to every
// layer, or after each layer as prefill goes (the cascade): layers
// compressed earlier are then trimmed again to their smaller shares, and the
// final kept sets are the same as with one Compress at the end. A layer's
// first Compress ends its prompt; later Appends are decode tokens, which
// only the decode-evicting policies (StreamingLLM, TOVA, CAKE) evict.
//
// Compress fails, leaving the cache unchanged, if a layer to score lacks the
// queries scoring needs or holds NaN or infinite data.
func (c *KVCache) Compress() (Report, error) {
	before := c.Bytes()
	p := &c.cfg.Policy
	w := p.windowOf(&c.cfg)
	// Check and score every new layer before changing anything.
	s := &scratch{c: c}
	fresh := map[int]layerScores{}
	for l := range c.layers {
		L := &c.layers[l]
		if L.state != layerPending || L.tokens <= c.cfg.Budget {
			continue
		}
		if p.queries != queriesNone && L.qTail < w {
			return Report{}, invalidf("Compress: layer %d has the queries of only its last %d tokens, want the last %d", l, L.qTail, w)
		}
		if p.accumulates && (L.heavy == nil || len(L.heavy[0]) != L.tokens) {
			return Report{}, invalidf("Compress: layer %d: %s needs the queries of every prompt token, and some Append had q = nil", l, p.name)
		}
		ls, err := c.scoreLayer(s, l)
		if err != nil {
			return Report{}, err
		}
		fresh[l] = ls
	}
	return c.apply(fresh, before), nil
}

// apply ranks the layers whose prefix scores are in fresh, splits the budget
// over them and the layers ranked before, and trims every ranked layer to
// its share.
func (c *KVCache) apply(fresh map[int]layerScores, before int64) Report {
	p := &c.cfg.Policy
	w := p.windowOf(&c.cfg)
	for l, ls := range fresh {
		L := &c.layers[l]
		m := L.tokens - w
		L.ranked, L.prompt, L.stats = true, L.tokens, ls
		L.stats.s = nil
		if p.heads == JointHeads {
			L.winners = rankAll(ls.s)
		}
		for kv := range L.heads {
			L.heads[kv].order = rankRows(ls.s[kv*m : (kv+1)*m])
		}
		L.budget = math.MaxInt
		L.heavy = nil
	}
	ids, b := c.budgets()
	for i, l := range ids {
		if L := &c.layers[l]; b[i] < L.budget {
			c.trim(L, b[i])
		}
	}
	final := true
	for l := range c.layers {
		L := &c.layers[l]
		if L.state == layerPending {
			L.state, L.queries, L.qTail, L.heavy = layerCompressed, nil, 0, nil
			if !L.ranked {
				L.prompt = L.tokens
			}
		}
		final = final && L.state == layerCompressed
		L.limit = c.decodeLimit(L)
	}
	if final {
		// Budgets cannot change any more: the rankings kept for
		// re-trimming are dead weight.
		for l := range c.layers {
			c.layers[l].winners = nil
			for kv := range c.layers[l].heads {
				c.layers[l].heads[kv].order = nil
			}
		}
	}
	return c.report(before)
}

// budgets returns the ranked layers and their per-head prefix budgets under
// the policy's layer allocation.
func (c *KVCache) budgets() (ids, b []int) {
	p := &c.cfg.Policy
	w := p.windowOf(&c.cfg)
	bbar := c.cfg.Budget - w
	var e, pref []float64
	var m []int
	final := true
	for l := range c.layers {
		L := &c.layers[l]
		if L.state == layerEmpty {
			final = false
		}
		if !L.ranked {
			continue
		}
		ids, m = append(ids, l), append(m, L.prompt-w)
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

// trim cuts a ranked layer down to the per-head budget b (spec section 4).
// With joint head budgets the layer's top Hkv·b prefix tokens decide how
// many each head keeps; otherwise every head keeps b. Each head keeps its
// best that many. A budget that only shrinks keeps a prefix of each head's
// ranking, so trimming again gives the same result as trimming once.
func (c *KVCache) trim(L *layer, b int) {
	L.budget = b
	p := &c.cfg.Policy
	m := L.prompt - p.windowOf(&c.cfg)
	if b >= m {
		return // kept whole
	}
	caps := make([]int, len(L.heads))
	if p.heads == JointHeads {
		L.winners = L.winners[:len(L.heads)*b]
		if cap(L.winners) > 2*len(L.winners) { // free the ranking of a layer first kept whole
			L.winners = slices.Clone(L.winners)
		}
		for _, s := range L.winners {
			caps[int(s.idx)/m]++
		}
		caps = headCaps(caps, b, m, c.cfg.Budget, p.floor, p.alpha)
	} else {
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
	h.pos = gatherInto(h.pos, idx, 1, size, fresh, gatherRowsGeneric[int32])
	if fresh {
		h.order = slices.Clone(h.order)
	}
}

func (c *KVCache) report(before int64) Report {
	r := Report{Layers: make([]LayerReport, len(c.layers)), BytesBefore: before, BytesAfter: c.Bytes()}
	for l := range c.layers {
		L := &c.layers[l]
		lr := LayerReport{Compressed: L.state == layerCompressed}
		if lr.Compressed {
			lr.Prompt, lr.Ranked, lr.Entropy, lr.Budget = L.prompt, L.ranked, L.stats.entropy, L.budget
			if !L.ranked {
				lr.Budget = L.prompt - c.cfg.Policy.windowOf(&c.cfg)
			}
		}
		lr.Kept = make([]int, len(L.heads))
		for kv := range L.heads {
			lr.Kept[kv] = L.heads[kv].len()
		}
		r.Layers[l] = lr
	}
	return r
}
