package lava

import "slices"

// Clone returns an independent deep copy of the cache: appending to or
// compressing either leaves the other unchanged. Engines use it to share a
// prefilled prompt between several continuations.
func (c *KVCache) Clone() *KVCache {
	n := &KVCache{cfg: c.cfg, group: c.group, layers: make([]layer, len(c.layers)), attnInv: make([]float32, c.group)}
	for l, L := range c.layers {
		L.queries = slices.Clone(L.queries)
		L.winners = slices.Clone(L.winners)
		L.heavy = slices.Clone(L.heavy)
		for kv := range L.heavy {
			L.heavy[kv] = slices.Clone(L.heavy[kv])
		}
		L.heads = slices.Clone(L.heads)
		for i, h := range L.heads {
			L.heads[i] = head{k: h.k.clone(), v: h.v.clone(), pos: slices.Clone(h.pos), order: slices.Clone(h.order)}
		}
		n.layers[l] = L
	}
	return n
}

// CloneWith returns an independent copy of a cache whose prompt has been
// appended but not yet compressed, set up to compress under cfg instead:
// another Policy, Budget, Window, pooling or floor. One prefill then serves
// every policy and budget to be compared. cfg must have the same Layers,
// Heads, KVHeads, HeadDim and Element, and a Window no larger than the
// source's (the source keeps only the queries of its last Window tokens).
// H2O needs sums that only an H2O cache accumulates while appending: a copy
// of any other cache under H2O fails at Compress.
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
	case cfg.Element != s.Element:
		return nil, invalidf("CloneWith: Element %v differs from the cache's %v", cfg.Element, s.Element)
	case cfg.Window > s.Window:
		return nil, invalidf("CloneWith: Window = %d, want ≤ the cache's %d", cfg.Window, s.Window)
	}
	for l := range c.layers {
		if c.layers[l].state == layerCompressed {
			return nil, invalidf("CloneWith: layer %d is already compressed", l)
		}
	}
	n := c.Clone()
	n.cfg = cfg
	row := cfg.Heads * cfg.HeadDim
	for l := range n.layers {
		L := &n.layers[l]
		if !cfg.Policy.accumulates || !s.Policy.accumulates {
			L.heavy = nil // sums only an accumulating cache has
		}
		if L.queries == nil {
			continue
		}
		// Re-slot the kept queries for the new ring size.
		q := make([]float32, cfg.Window*row)
		L.qTail = min(L.qTail, cfg.Window)
		for p := L.tokens - L.qTail; p < L.tokens; p++ {
			from, to := p%s.Window, p%cfg.Window
			copy(q[to*row:(to+1)*row], L.queries[from*row:(from+1)*row])
		}
		L.queries = q
	}
	return n, nil
}
