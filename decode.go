package lava

// This file is the decode path: attention of new tokens over the cache, and
// the eviction of the policies that hold a fixed cache size while
// generating (Policy.decode): the oldest non-sink entry at Append
// (StreamingLLM), or the entry the current query attends to least at Attend
// (per head for CAKE, shared by the layer's heads for TOVA).

// Attend computes the attention of the last t appended tokens of a layer
// over the entries its KV heads hold: for token i, at position P−t+i where P
// is the number of tokens ever appended, out_h = softmax(q_h·Kᵀ/√d)·V over
// the entries of KV head h/(Heads/KVHeads) whose positions are at most its
// own (the causal mask, by position). q and out hold [t][Heads][HeadDim]
// values; t = 1 is decode attention, t > 1 a prefill chunk or the tokens of
// a speculative draft. A head with no visible entries gives zeros. Attend
// does not append: call Append with the tokens' keys and values first, as a
// decoder does, so each token attends to itself. Attend keeps the queries it
// is given as the layer's most recent (those Append already had are not
// taken twice), so a host need not pass them to Append as well.
//
// With Config.DecodeSlack S > 0, once every layer that holds tokens has
// attended its latest ones and the cache holds more than Budget + S entries
// per head on average, Attend compresses it back to Budget; an error of that
// Compress is returned (the attention in out is complete either way).
func (c *KVCache) Attend(layer int, q, out []float32) error {
	if layer < 0 || layer >= len(c.layers) {
		return invalidf("Attend: layer = %d, want 0 ≤ layer < %d", layer, len(c.layers))
	}
	d, H := c.cfg.HeadDim, c.cfg.Heads
	L := &c.layers[layer]
	if len(q) == 0 || len(q)%(H*d) != 0 || len(q)/(H*d) > max(L.tokens, 1) {
		return invalidf("Attend: len(q) = %d, want t·Heads·HeadDim for 1 ≤ t ≤ the %d tokens appended (Heads·HeadDim = %d)", len(q), L.tokens, H*d)
	}
	if len(out) != len(q) {
		return invalidf("Attend: len(out) = %d, want len(q) = %d", len(out), len(q))
	}
	t := len(q) / (H * d)
	c.settle(L)
	known := c.recordQueries(L, q, t) // tokens i ≥ known bring new queries
	g := c.group
	mode := c.cfg.Policy.decode
	// The policies that evict at Attend keep uniform heads (TOVA one shared
	// set), so every head has head 0's length and one test decides for all.
	// They rank by the last token's attention.
	evict := L.limit > 0 && (mode == decodeLeastAttendedHead || mode == decodeLeastAttendedLayer) && L.heads[0].len() > L.limit
	heads := float32(g) // the attention eviction ranks by: the group's mean
	if mode == decodeLeastAttendedLayer {
		heads = float32(H) // or the layer's
	}
	if workers := c.workers(); workers > 1 && len(L.heads) > 1 && !evict && c.attendWork(L, t) >= minSplitWork {
		c.attendSplit(L, q, out, t, known, workers)
	} else {
		// The cache's own scratch, given back below as it grew.
		sc := attendScratch{attn: c.attn, attnInv: c.attnInv, groupQ: c.groupQ}
		for kv := range L.heads {
			h := &L.heads[kv]
			n := h.len()
			var es []float32 // the attention decode eviction ranks by
			if n > 0 {
				if cap(c.evictScore) < n {
					c.evictScore = make([]float32, max(n, cap(h.pos)))
				}
				if evict {
					es = c.evictScore[:n]
					if mode == decodeLeastAttendedHead || kv == 0 {
						clear(es)
					}
				}
			}
			qs, outs := sc.groupRows(c, q, out, kv, t)
			c.attendHead(L, kv, qs, outs, t, known, &sc, es, heads)
			if t > 1 {
				scatterGroup(c, out, outs, kv, t)
			}
			if evict && mode == decodeLeastAttendedHead && n > 0 {
				// The most recent Window entries are the window, kept.
				c.evictLeast(h, es, max(n-c.cfg.Window, 1), n-L.limit)
			}
		}
		c.attn, c.attnInv, c.groupQ = sc.attn, sc.attnInv, sc.groupQ
	}
	if evict && mode == decodeLeastAttendedLayer {
		// Heads share one kept set, so the same rows go from every head.
		n := L.heads[0].len()
		for kv := range L.heads {
			c.evictLeast(&L.heads[kv], c.evictScore[:n], n, n-L.limit)
		}
	}
	L.attended = L.tokens
	if c.slackDue() {
		if _, err := c.Compress(); err != nil {
			return err
		}
	}
	return nil
}

// attendScratch is the scratch of the attention of one KV head's query
// group: the scores over the head (attn), their softmax denominators'
// inverses (attnInv), and the queries and outputs of the group for several
// tokens (groupQ).
type attendScratch struct {
	attn, attnInv, groupQ []float32
}

// reserve makes attn and attnInv large enough for rows query rows over a
// head of entries entries.
func (s *attendScratch) reserve(rows, entries int) {
	if cap(s.attn) < rows*entries {
		s.attn = make([]float32, rows*entries)
	}
	if cap(s.attnInv) < rows {
		s.attnInv = make([]float32, rows)
	}
}

// bytes is the memory the scratch holds.
func (s *attendScratch) bytes() int64 {
	return int64(4 * (cap(s.attn) + cap(s.attnInv) + cap(s.groupQ)))
}

// attendWork is the number of query·key products of Attend of t tokens
// over L.
func (c *KVCache) attendWork(L *layer, t int) int {
	n := 0
	for kv := range L.heads {
		n += L.heads[kv].len()
	}
	return t * c.group * n * c.cfg.HeadDim
}

// attendHead computes the attention of the t tokens' queries of KV head
// kv's group, qs ([t][g][HeadDim], as groupRows gives them), over the
// head's entries into outs (the same shape), using sc's attn and attnInv,
// and adds new queries' attention to H2O's sums. With es non-nil it adds
// the last token's attention, divided by heads, to es: what decode
// eviction ranks by. It writes only outs, es and the head.
func (c *KVCache) attendHead(L *layer, kv int, qs, outs []float32, t, known int, sc *attendScratch, es []float32, heads float32) {
	d, g := c.cfg.HeadDim, c.group
	scale := float32(c.cfg.AttentionScale)
	accumulate := c.cfg.Policy.accumulates
	rows := t * g // query rows per KV head, token-major
	h := &L.heads[kv]
	n := h.len()
	if n == 0 {
		clear(outs)
		return
	}
	// Room for the head's capacity, so that decode Appends within it
	// do not regrow the scratch.
	if cap(sc.attn) < rows*n || cap(sc.attnInv) < rows {
		sc.reserve(rows, max(n, cap(h.pos)))
	}
	p := sc.attn[:rows*n]
	h.k.score(qs, n, d, scale, p)
	// Unnormalised softmax rows over each token's visible entries, the
	// rest zeroed; each output row is scaled once after.
	visible := n
	for i := t - 1; i >= 0; i-- {
		for visible > 0 && int(h.pos[visible-1]) > L.tokens-t+i {
			visible--
		}
		for r := i * g; r < (i+1)*g; r++ {
			row := p[r*n : (r+1)*n]
			clear(row[visible:])
			sc.attnInv[r] = 0
			if visible > 0 {
				sc.attnInv[r] = 1 / expSub(row[:visible], maxOf(row[:visible]))
			}
			if accumulate && i >= known { // H2O: a new query's attention, once
				axpy(sc.attnInv[r], row[:visible], h.heavy[:visible])
			}
			if es != nil && i == t-1 {
				axpy(sc.attnInv[r]/heads, row, es)
			}
		}
	}
	h.v.weightedSums(p, outs, d)
	for r := range rows {
		o, inv := outs[r*d:(r+1)*d], sc.attnInv[r]
		for j := range o {
			o[j] *= inv
		}
	}
}

// slackDue tells whether the decode slack is used up at the end of a step:
// every layer holds the same tokens and has attended its latest ones, and
// the cache holds more than Budget + DecodeSlack entries per head on
// average. It allocates nothing.
func (c *KVCache) slackDue() bool {
	if c.cfg.DecodeSlack == 0 {
		return false
	}
	for l := range c.layers {
		if L := &c.layers[l]; L.attended != L.tokens || L.tokens != c.layers[0].tokens {
			return false // mid-step: some layer has not received or attended the step's tokens
		}
	}
	return c.heldPerHead() > float64(c.cfg.Budget+c.cfg.DecodeSlack)
}

// evictLeast removes from h the k rows among its first cand whose scores es
// are lowest (the lower row first on ties), so that a step that appended
// several tokens still ends at the layer's limit. Rows move down in place;
// the scratch is reused, so steady decoding allocates nothing.
func (c *KVCache) evictLeast(h *head, es []float32, cand, k int) {
	k = min(k, cand)
	if k <= 0 {
		return
	}
	n := h.len()
	// Mark the k lowest by repeated selection: k is the handful of tokens
	// one step appended, usually 1.
	drop := growTo(c.evictDrop, n)
	c.evictDrop = drop
	clear(drop)
	for range k {
		best := -1
		for i := range cand {
			if !drop[i] && (best < 0 || es[i] < es[best]) {
				best = i
			}
		}
		drop[best] = true
	}
	keep := c.evictKeep[:0]
	for i := range n {
		if !drop[i] {
			keep = append(keep, int32(i))
		}
	}
	c.evictKeep = keep
	d := c.cfg.HeadDim
	h.k.gather(keep, d, 0, false)
	h.v.gather(keep, d, 0, false)
	h.pos = gatherElems(h.pos, keep, 0, false)
	if h.heavy != nil {
		h.heavy = gatherElems(h.heavy, keep, 0, false)
	}
	h.order = nil // no re-trim of a layer that decode eviction changed
}

// groupRows returns the queries of KV head kv's query group for the t
// tokens of q, [t][g][HeadDim] contiguous, and where their outputs go: the
// slices of q and out themselves for one token, sc's groupQ for
// several (q and out interleave the groups of all heads per token).
func (sc *attendScratch) groupRows(c *KVCache, q, out []float32, kv, t int) (qs, outs []float32) {
	gd := c.group * c.cfg.HeadDim
	if t == 1 {
		return q[kv*gd : (kv+1)*gd], out[kv*gd : (kv+1)*gd]
	}
	if cap(sc.groupQ) < 2*t*gd {
		sc.groupQ = make([]float32, 2*t*gd)
	}
	qs, outs = sc.groupQ[:t*gd], sc.groupQ[t*gd:2*t*gd]
	gatherGroup(c, qs, q, kv, t)
	return qs, outs
}

// gatherGroup copies the queries of KV head kv's group for the t tokens of
// q into qs, [t][g][HeadDim].
func gatherGroup(c *KVCache, qs, q []float32, kv, t int) {
	gd, Hd := c.group*c.cfg.HeadDim, c.cfg.Heads*c.cfg.HeadDim
	for i := range t {
		copy(qs[i*gd:(i+1)*gd], q[i*Hd+kv*gd:i*Hd+(kv+1)*gd])
	}
}

// scatterGroup copies KV head kv's outputs for t tokens, [t][g][HeadDim]
// in outs, into out (KV head kv's columns only).
func scatterGroup(c *KVCache, out, outs []float32, kv, t int) {
	gd, Hd := c.group*c.cfg.HeadDim, c.cfg.Heads*c.cfg.HeadDim
	for i := range t {
		copy(out[i*Hd+kv*gd:i*Hd+(kv+1)*gd], outs[i*gd:(i+1)*gd])
	}
}

// decodeLimit is the number of entries per KV head that decode eviction
// holds a layer to once a Compress has seen it, or 0 for policies that never
// evict while decoding: the layer's budget plus the window (a layer scored
// when it held fewer grows up to it), or Budget for a layer not scored yet.
func (c *KVCache) decodeLimit(L *layer) int {
	if L.tokens == 0 || c.cfg.Policy.decode == decodeKeep {
		return 0
	}
	if L.ranked {
		return L.budget + c.cfg.Policy.windowOf(&c.cfg)
	}
	return c.cfg.Budget
}

// evictOldest holds every head of L to L.limit entries by evicting the
// oldest entries after the attention sinks.
func (c *KVCache) evictOldest(L *layer) {
	for kv := range L.heads {
		h := &L.heads[kv]
		sinks := 0
		for sinks < h.len() && h.pos[sinks] < int32(c.cfg.Policy.sinks) {
			sinks++
		}
		if over := h.len() - L.limit; over > 0 {
			removeRows(h, sinks, over, c.cfg.HeadDim)
		}
	}
}

// removeRows deletes rows r..r+k−1 of h, moving later rows down; storage
// keeps its capacity for the next decode tokens.
func removeRows(h *head, r, k, d int) {
	n := h.len()
	h.k.remove(r, k, n, d)
	h.v.remove(r, k, n, d)
	h.pos = append(h.pos[:r], h.pos[r+k:]...)
	if h.heavy != nil {
		h.heavy = append(h.heavy[:r], h.heavy[r+k:]...)
	}
	h.order = nil // no re-trim of a layer that decode eviction changed
}
