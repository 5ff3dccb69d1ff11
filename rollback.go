package lava

// This file undoes appends: Truncate, and CommonTokens to notice a step that
// failed part-way.

// Truncate drops from every layer everything at positions ≥ pos: the
// entries, the queries kept for scoring, the accumulated scores, and the
// token count, which becomes pos where it was larger (layers already at or
// below pos are left alone). It serves speculative decoding (drop the
// rejected draft tokens), a failed step (drop what some layers received)
// and regeneration (drop the last reply).
//
// What an earlier Compress evicted stays evicted, and entries that decode
// eviction (StreamingLLM, TOVA, CAKE) removed while the dropped tokens were
// appended do not come back. A layer whose last scoring saw dropped tokens
// (its window reached past pos) loses that scoring and is scored afresh by
// the next Compress. H2O's sums keep the attention that the dropped tokens'
// queries paid to the entries that remain. Apart from these, a cache
// truncated to pos is the cache as it was when it held pos tokens: a
// rollback of tokens appended after the last Compress, with queries of at
// most Window of them recorded, then the same continuation, gives the
// same cache as never having appended them.
func (c *KVCache) Truncate(pos int) error {
	if pos < 0 {
		return invalidf("Truncate: pos = %d, want ≥ 0", pos)
	}
	ring := c.cfg.queryRing()
	for l := range c.layers {
		L := &c.layers[l]
		if L.tokens <= pos {
			continue
		}
		c.settle(L)
		for kv := range L.heads {
			h := &L.heads[kv]
			n := h.len()
			for n > 0 && int(h.pos[n-1]) >= pos {
				n--
			}
			h.k.truncate(n, c.cfg.HeadDim)
			h.v.truncate(n, c.cfg.HeadDim)
			h.pos = h.pos[:n]
			if h.heavy != nil {
				h.heavy = h.heavy[:n]
			}
		}
		// The dropped tokens' queries took the slots of the ones a ring
		// before them.
		L.ringFrom = max(L.ringFrom, L.qNext-ring)
		L.qNext = min(L.qNext, pos)
		L.qFrom = min(L.qFrom, L.qNext)
		L.tokens = pos
		L.attended = min(L.attended, pos)
		if L.scoredAt > pos {
			heads, queries := L.heads, L.queries
			for kv := range heads {
				heads[kv].order = nil
			}
			*L = layer{heads: heads, queries: queries, tokens: L.tokens,
				qFrom: L.qFrom, qNext: L.qNext, ringFrom: L.ringFrom, attended: L.attended}
		}
		L.limit = c.decodeLimit(L)
	}
	return nil
}

// CommonTokens returns the number of tokens every layer holds, or an error
// naming the first layer that disagrees with layer 0: the sign of a step
// that failed part-way (say an Append error at layer 2 after layers 0 and 1
// took the token). Call it at the start of a step; Truncate to the smaller
// count undoes the partial one.
func (c *KVCache) CommonTokens() (int, error) {
	if len(c.layers) == 0 {
		return 0, nil // a zero KVCache
	}
	n := c.layers[0].tokens
	for l := range c.layers {
		if t := c.layers[l].tokens; t != n {
			return 0, invalidf("CommonTokens: layer %d holds %d tokens, layer 0 holds %d (a step failed part-way? Truncate(%d) undoes it)", l, t, n, min(t, n))
		}
	}
	return n, nil
}
