package lava

import "slices"

// Clone returns an independent deep copy of the cache: appending to or
// compressing either leaves the other unchanged. Engines use it to share a
// prefilled prompt between several continuations.
func (c *KVCache) Clone() *KVCache {
	n := &KVCache{cfg: c.cfg, group: c.group, layers: make([]layer, len(c.layers)), attnInv: make([]float32, c.group)}
	for l := range c.layers {
		c.settle(&c.layers[l])
	}
	for l, L := range c.layers {
		L.queries = slices.Clone(L.queries)
		L.winners = slices.Clone(L.winners)
		L.cand, L.off = slices.Clone(L.cand), slices.Clone(L.off)
		L.heads = slices.Clone(L.heads)
		for i, h := range L.heads {
			L.heads[i] = head{k: h.k.clone(), v: h.v.clone(), pos: slices.Clone(h.pos),
				order: slices.Clone(h.order), heavy: slices.Clone(h.heavy)}
		}
		n.layers[l] = L
	}
	return n
}

// CloneWith returns an independent copy of a cache that no Compress has
// evicted from yet, set up to compress under cfg instead: another Policy,
// Budget, Window or slack. One prefill then serves every policy and budget
// to be compared. cfg must have the same Layers, Heads, KVHeads, HeadDim and
// KeyElement and ValueElement, and a Window no larger than the source's (the source keeps only
// the queries of its last Window tokens). H2O needs sums that only an H2O
// cache accumulates while appending: a copy of any other cache under H2O
// fails at Compress.
func (c *KVCache) CloneWith(cfg Config) (*KVCache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := c.cfg
	switch {
	case cfg.Layers != s.Layers || cfg.Heads != s.Heads || cfg.KVHeads != s.KVHeads || cfg.HeadDim != s.HeadDim:
		return nil, invalidf("CloneWith: shape %d×%d/%d×%d differs from the cache's %d×%d/%d×%d (Layers×Heads/KVHeads×HeadDim)",
			cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.HeadDim, s.Layers, s.Heads, s.KVHeads, s.HeadDim)
	case cfg.KeyElement != s.KeyElement || cfg.ValueElement != s.ValueElement:
		return nil, invalidf("CloneWith: KeyElement/ValueElement %v/%v differ from the cache's %v/%v", cfg.KeyElement, cfg.ValueElement, s.KeyElement, s.ValueElement)
	case cfg.Window > s.Window:
		return nil, invalidf("CloneWith: Window = %d, want ≤ the cache's %d", cfg.Window, s.Window)
	}
	for l := range c.layers {
		if c.layers[l].ranked {
			return nil, invalidf("CloneWith: layer %d is already compressed", l)
		}
	}
	n := c.Clone()
	n.cfg = cfg
	row := cfg.Heads * cfg.HeadDim
	for l := range n.layers {
		L := &n.layers[l]
		L.limit = 0
		switch {
		case !cfg.Policy.accumulates:
			for kv := range L.heads {
				L.heads[kv].heavy = nil
			}
		case !s.Policy.accumulates:
			// Sums this cache never accumulated: zeros that keep the rows
			// aligned, and a broken run of queries that Compress reports.
			for kv := range L.heads {
				L.heads[kv].heavy = make([]float32, L.heads[kv].len())
			}
			L.qFrom = L.qNext
		}
		if L.queries == nil {
			continue
		}
		// Re-slot the kept queries for the new ring size.
		q := make([]float32, cfg.queryRing()*row)
		for p := max(L.qFrom, L.qNext-cfg.queryRing()); p < L.qNext; p++ {
			from, to := p%s.queryRing(), p%cfg.queryRing()
			copy(q[to*row:(to+1)*row], L.queries[from*row:(from+1)*row])
		}
		L.queries = q
	}
	return n, nil
}
