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
	workers := c.workers()
	var scored []layerScores // in layer order
	if c.heldPerHead() > float64(c.cfg.Budget) {
		// Check and score every new layer before changing anything.
		var err error
		if workers == 1 || p.scoreAll != nil {
			scored, err = c.scoreEach(w)
		} else {
			scored, err = c.scoreAcross(w, workers)
		}
		if err != nil {
			return Report{}, err
		}
	}
	c.apply(scored, workers)
	r := c.report(before, scored)
	r.Evicted = len(scored) > 0
	return r, nil
}

// scoreEach scores the layers Compress scores one after the other on the
// calling goroutine, in layer order, or fails at the first that cannot be.
func (c *KVCache) scoreEach(w int) ([]layerScores, error) {
	s := &scratch{c: c}
	var scored []layerScores
	for l := range c.layers {
		if ok, err := c.toScore(l, w); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		c.settle(&c.layers[l])
		ls, err := c.scoreLayer(s, l)
		if err != nil {
			return nil, err
		}
		scored = append(scored, ls)
	}
	return scored, nil
}

// scoreAcross is scoreEach by KV head on up to workers goroutines, with
// the same result and the same error.
func (c *KVCache) scoreAcross(w, workers int) ([]layerScores, error) {
	var ids []int
	var bad error // the first layer that cannot be scored: the layers before it are
	for l := range c.layers {
		ok, err := c.toScore(l, w)
		if err != nil {
			bad = err
			break
		}
		if ok {
			c.settle(&c.layers[l])
			ids = append(ids, l)
		}
	}
	outs, err := c.scoreLayers(ids, workers)
	if err != nil {
		return nil, err
	}
	return outs, bad
}

// toScore tells whether Compress scores layer l, with the policy's window
// w: it received tokens since it was last scored and has candidates before
// the window. It fails if the layer lacks the queries scoring needs.
func (c *KVCache) toScore(l, w int) (bool, error) {
	p := &c.cfg.Policy
	L := &c.layers[l]
	if !L.fresh() || L.tokens <= w {
		return false, nil // nothing new, or no candidates before the window
	}
	switch {
	case p.queries == queriesWindow && L.windowQueries(w) < w:
		return false, invalidf("Compress: layer %d has the queries of only its last %d tokens, want the last %d (give them to Append or Attend)", l, L.windowQueries(w), w)
	case p.queries == queriesAll && !L.allQueries():
		return false, invalidf("Compress: layer %d: %s needs the queries of every token, and some were not given to Append or Attend", l, p.name)
	}
	return true, nil
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
			held += L.heads[kv].held()
		}
	}
	if holding == 0 {
		return 0
	}
	return float64(held) / float64(holding*c.cfg.KVHeads)
}

// apply ranks the layers whose candidate scores are in scored, splits the
// budget over them and the layers ranked before, and trims every ranked
// layer whose share is below what it holds, on up to workers goroutines.
func (c *KVCache) apply(scored []layerScores, workers int) {
	var ids, b []int
	if len(scored) > 0 {
		for i := range scored {
			c.ranked(&c.layers[scored[i].l], scored[i])
		}
		c.rankLayers(scored, workers)
		ids, b = c.budgets()
	}
	c.trimLayers(ids, b, scored, workers)
	for l := range c.layers {
		L := &c.layers[l]
		L.limit = c.decodeLimit(L)
	}
}

// ranked records that L was scored now, with the scores ls, before its
// ranking.
func (c *KVCache) ranked(L *layer, ls layerScores) {
	L.ranked, L.scoredAt, L.stats = true, L.tokens, ls.layerStats
	L.cand, L.off = ls.cand, ls.off
	L.winners = nil
	L.budget = math.MaxInt
}

// rankLayers ranks the candidates of the layers scored, one unit per layer
// on up to workers goroutines: each head's ranking of its own, and with
// joint head budgets the layer's joint ranking, from one sort.
func (c *KVCache) rankLayers(scored []layerScores, workers int) {
	joint := c.cfg.Policy.heads == JointHeads
	workers = min(workers, len(scored))
	sc := make([]rankScratch, workers)
	parallel(workers, len(scored), func(w, i int) {
		ls := &scored[i]
		L := &c.layers[ls.l]
		orders, winners := rankLayer(ls.s, ls.off, joint, &sc[w])
		for kv := range L.heads {
			L.heads[kv].order = orders[kv]
		}
		L.winners = winners
	})
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
	for l := range c.layers {
		L := &c.layers[l]
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
		return ids, cakeBudgets(preferences(pref), m, total, c.allLayersHold())
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

// trimLayers cuts the ranked layers ids whose budgets b shrank down to
// them, on up to workers goroutines: one unit per layer for its head caps,
// then one per KV head for its compaction. With joint head budgets a
// layer's top Hkv·b candidates decide how many each head keeps (with the
// policy's floor); otherwise every head keeps b. Each head keeps its best
// that many. A budget that only shrinks keeps a prefix of each head's
// ranking, so trimming again gives the same result as trimming once.
//
// While some layer holds no tokens yet (the cascade is under way), a layer
// scored before this Compress whose evicted rows would move down in place,
// freeing no memory, keeps them where they are (deferred) until it is read
// (see settle) or trimmed again: the next step of the cascade shrinks its
// budget again, and the rows move once, not at every step. The layers
// scored now (just appended to) and, once every layer holds tokens, all
// layers hold exactly their entries when Compress returns.
func (c *KVCache) trimLayers(ids, b []int, scored []layerScores, workers int) {
	p := &c.cfg.Policy
	lazy := deferCompaction && !c.allLayersHold() && p.decode == decodeKeep && !p.accumulates
	var trimmed []int // the indices into ids of the layers whose share shrank
	for i, l := range ids {
		if b[i] < c.layers[l].budget {
			trimmed = append(trimmed, i)
		}
	}
	caps := make([][]int, len(trimmed)) // their head caps, nil for a layer kept whole
	headOf := make([][]int32, min(workers, len(trimmed)))
	parallel(workers, len(trimmed), func(w, j int) {
		i := trimmed[j]
		caps[j] = c.caps(&c.layers[ids[i]], b[i], &headOf[w])
	})
	// One unit per head to trim, and without lazy one per head of the
	// other layers that holds deferred rows.
	type unit struct {
		h    *head
		cap  int  // the ranked candidates it keeps, or −1 to settle it
		wait bool // whether its rows may wait (trimHead)
	}
	var units []unit
	now := make([]bool, len(c.layers)) // the layers scored now
	for _, ls := range scored {
		now[ls.l] = true
	}
	cut := make([]bool, len(c.layers)) // the layers trimmed now
	for j, i := range trimmed {
		if caps[j] == nil {
			continue
		}
		l := ids[i]
		cut[l] = true
		for kv := range c.layers[l].heads {
			units = append(units, unit{&c.layers[l].heads[kv], caps[j][kv], lazy && !now[l]})
		}
	}
	for l := range c.layers {
		if L := &c.layers[l]; !lazy && !cut[l] {
			for kv := range L.heads {
				if L.heads[kv].evicted > 0 {
					units = append(units, unit{h: &L.heads[kv], cap: -1})
				}
			}
		}
	}
	workers = min(workers, len(units))
	sc := make([]compactScratch, workers)
	parallel(workers, len(units), func(w, i int) {
		if u := units[i]; u.cap >= 0 {
			c.trimHead(u.h, u.cap, u.wait, &sc[w])
		} else {
			c.compact(u.h, false, &sc[w])
		}
	})
}

// deferCompaction lets Compress leave evicted rows in place during a cascade
// (trimLayers); tests turn it off to compare with compacting at once.
var deferCompaction = true

// allLayersHold tells whether every layer holds tokens: the cascade over
// one prompt has reached its last layer.
func (c *KVCache) allLayersHold() bool {
	for l := range c.layers {
		if c.layers[l].tokens == 0 {
			return false
		}
	}
	return true
}

// caps sets L's budget to b and returns how many of its ranked candidates
// each head keeps, or nil if every head keeps them all. headOf is scratch.
func (c *KVCache) caps(L *layer, b int, headOf *[]int32) []int {
	L.budget = b
	p := &c.cfg.Policy
	caps := make([]int, len(L.heads))
	if p.heads == JointHeads {
		if len(L.heads)*b >= len(L.winners) {
			return nil // kept whole
		}
		L.winners = L.winners[:len(L.heads)*b]
		if cap(L.winners) > 2*len(L.winners) { // free the ranking of a layer first kept whole
			L.winners = slices.Clone(L.winners)
		}
		of := headsOf(L.off, headOf)
		for _, s := range L.winners {
			caps[of[s.idx]]++
		}
		return headCaps(caps, b, L.cand, c.cfg.Budget, p.floor, p.alpha)
	}
	if b >= slices.Max(L.cand) {
		return nil // kept whole
	}
	for kv := range caps {
		caps[kv] = b
	}
	return caps
}

// trimHead keeps the best n of h's ranked candidates (a prefix of h.order)
// and every row after them. The evicted rows go at once when that frees
// memory (storage at least half free, or short of the reserve: see fresh)
// or without lazy; otherwise they stay in place, counted in h.evicted,
// until settle, as long as the storage keeps room for the decode reserve
// beside them.
func (c *KVCache) trimHead(h *head, n int, lazy bool, sc *compactScratch) {
	n = min(n, len(h.order))
	h.evicted += len(h.order) - n
	h.order = h.order[:n]
	fresh, room := c.fresh(h)
	switch {
	case fresh:
		c.compact(h, true, sc)
	case h.evicted == 0:
		// Nothing to move.
	case !lazy || h.len()+c.cfg.DecodeReserve > room:
		c.compact(h, false, sc)
	}
}

// fresh tells whether compacting h moves its storage to a new array: when at
// least half of it would be free, so that evicted memory is returned to the
// Go heap, or when it lacks room for DecodeReserve more rows beside the
// kept ones; otherwise rows move down in place and the capacity serves
// later decode Appends. room is the rows the storage has room for.
func (c *KVCache) fresh(h *head) (fresh bool, room int) {
	d, size := c.cfg.HeadDim, h.held()+c.cfg.DecodeReserve
	room = min(cap(h.pos), h.k.capRows(d), h.v.capRows(d))
	return 2*size <= room || size > room, room
}

// compactScratch is the scratch of compact, grown as needed.
type compactScratch struct{ keep, newRow []int32 }

// compact moves out the rows h evicted: its ranked rows (the first
// len(h.order) + h.evicted) not in h.order, keeping the rest in order, in
// place or, with fresh, in new storage with room for DecodeReserve more.
// h.order is renumbered to the rows' new places.
func (c *KVCache) compact(h *head, fresh bool, sc *compactScratch) {
	ranked := len(h.order) + h.evicted
	// Mark the kept ranked rows, then number them in position order.
	newRow := growTo(sc.newRow, ranked)
	for i := range newRow {
		newRow[i] = -1
	}
	for _, r := range h.order {
		newRow[r] = 0
	}
	keep := slices.Grow(sc.keep[:0], h.held())
	for r, mark := range newRow {
		if mark == 0 {
			newRow[r] = int32(len(keep))
			keep = append(keep, int32(r))
		}
	}
	for i, r := range h.order {
		h.order[i] = newRow[r]
	}
	for i := ranked; i < h.len(); i++ {
		keep = append(keep, int32(i))
	}
	sc.keep, sc.newRow = keep, newRow
	d, size := c.cfg.HeadDim, len(keep)+c.cfg.DecodeReserve
	h.k.gather(keep, d, size, fresh)
	h.v.gather(keep, d, size, fresh)
	h.pos = gatherElems(h.pos, keep, size, fresh)
	if h.heavy != nil {
		h.heavy = gatherElems(h.heavy, keep, size, fresh)
	}
	if fresh {
		h.order = slices.Clone(h.order)
	}
	h.evicted = 0
}

// settle moves out the rows a Compress evicted from the heads of L but left
// in place (trimLayers), so that each head's storage holds exactly its
// entries, in place: the memory stays with the head, as an immediate
// compaction in place would have left it. Everything that reads or extends
// a layer's rows settles it first: Compress before scoring it, Append,
// Attend, View, Truncate, Clone and saving.
func (c *KVCache) settle(L *layer) {
	var sc compactScratch
	for kv := range L.heads {
		if L.heads[kv].evicted > 0 {
			c.compact(&L.heads[kv], false, &sc)
		}
	}
}

func (c *KVCache) report(before int64, scored []layerScores) Report {
	r := Report{Layers: make([]LayerReport, len(c.layers)), BytesBefore: before, BytesAfter: c.Bytes()}
	for l := range c.layers {
		L := &c.layers[l]
		now := len(scored) > 0 && scored[0].l == l
		if now {
			scored = scored[1:]
		}
		lr := LayerReport{Scored: now, Ranked: L.ranked}
		if L.ranked {
			lr.Tokens, lr.Entropy, lr.Budget = L.scoredAt, L.stats.entropy, L.budget
		}
		lr.Kept = make([]int, len(L.heads))
		for kv := range L.heads {
			lr.Kept[kv] = L.heads[kv].held()
		}
		r.Layers[l] = lr
	}
	return r
}
