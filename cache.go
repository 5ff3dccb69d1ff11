package lava

import (
	"math"
	"runtime"
)

// KVCache holds the keys and values of every layer and KV head of one
// sequence, with the original position of every entry. Each KV head of each
// layer is its own variable-length sequence: after Compress the heads of a
// layer keep different numbers of entries.
//
// A KVCache is not safe for concurrent use.
type KVCache struct {
	cfg    Config
	group  int // query heads per KV head
	layers []layer
	// attn is the scratch of Attend: the scores of one group of query heads
	// over one KV head, attnInv their softmax denominators' inverses,
	// evictScore the attention decode eviction ranks by, and groupQ the
	// queries and outputs of one group for several tokens.
	attn, attnInv, evictScore, groupQ []float32
	// evictDrop and evictKeep are the scratch of decode eviction, heavyQ
	// and heavyZ that of H2O's accumulation.
	evictDrop      []bool
	evictKeep      []int32
	heavyQ, heavyZ []float32
	// pool shares Attend's KV heads among goroutines (nil until an Attend
	// splits; poolCleanup stops it with the cache), splitRows holding the
	// groups' queries and outputs.
	pool        *attendPool
	poolCleanup runtime.Cleanup
	splitRows   []float32
}

type layer struct {
	heads  []head
	tokens int // P: tokens ever appended, the position of the next one

	// Queries of the most recent tokens, from Append or Attend: token p's
	// [Heads][HeadDim] row is at slot p mod 2·Window, so that a Truncate of
	// up to Window tokens keeps the window's. Queries are known for the
	// contiguous positions qFrom … qNext−1 (the ring holds the last
	// 2·Window of them).
	queries      []float32
	qFrom, qNext int
	// ringFrom is the first position whose slot a Truncate did not leave
	// holding a dropped token's query.
	ringFrom int

	// Set by Compress for layers that take part in the budget split.
	ranked   bool
	scoredAt int        // P when the layer was last scored; new tokens since make it new
	stats    layerStats // its entropy and CAKE statistics
	cand     []int      // candidates per head when last scored (m_kv)
	off      []int      // the flat index of each head's first candidate then
	budget   int        // b_l: per-head budget for candidates
	winners  []scored   // the layer's joint top-k, best first, for re-trimming
	limit    int        // entries per head decode eviction holds, 0 for none
	attended int        // P when Attend last ran: the step's attention is done
}

// fresh tells whether tokens were appended to the layer since it was last
// scored.
func (L *layer) fresh() bool { return L.tokens > L.scoredAt }

// windowQueries returns how many of the most recent tokens' queries the
// layer holds, up to w.
func (L *layer) windowQueries(w int) int {
	if L.qNext != L.tokens {
		return 0
	}
	return min(w, L.qNext-L.qFrom, L.qNext-L.ringFrom)
}

// allQueries tells whether every token's queries have been seen, in order
// and once: what H2O's sums need.
func (L *layer) allQueries() bool { return L.qFrom == 0 && L.qNext == L.tokens }

// head is the storage of one KV head of one layer. Rows are in position
// order; the first len(order) + evicted are the candidates ranked when the
// layer was last scored, of which order lists the ones the head holds and
// a later Compress may still evict; the rest (the window and tokens
// appended since) stay until the layer is scored again.
type head struct {
	k, v rows // rows of HeadDim
	pos  []int32
	// order lists the rows of the ranked candidates held, best first, so
	// that re-trimming to a smaller budget keeps a prefix of it without
	// sorting.
	order []int32
	// evicted is the number of ranked rows a Compress evicted but left in
	// place, to be moved out when the head is next read (settle): the head
	// holds held() entries, not len().
	evicted int
	// heavy is H2O's attention accumulated from every query seen, one sum
	// per row (summed over the group).
	heavy []float32
}

// len is the number of rows stored, evicted ones left in place included.
func (h *head) len() int { return len(h.pos) }

// held is the number of entries the head holds.
func (h *head) held() int { return len(h.pos) - h.evicted }

// HeadView is the content of one KV head of one layer, in its storage type:
// Keys with Float32 keys, Keys16 (IEEE binary16 bits) with Float16 keys, or
// KeyBlocks (Len rows of KeyRowBytes bytes, the blocks Q8_0 and Q4_0
// describe) with quantised keys; the same for the values. They hold Len
// rows of HeadDim elements and alias the cache's storage: they are valid
// until the next Append, Compress or Reset, and must not be modified.
type HeadView struct {
	Keys, Values           []float32
	Keys16, Values16       []uint16
	KeyBlocks, ValueBlocks []byte
	// KeyRowBytes and ValueRowBytes are the bytes of one stored row.
	KeyRowBytes, ValueRowBytes int
	// Positions are the entries' original token positions, increasing.
	Positions    []int32
	keys, values rows
	headDim      int
}

// AppendKeys appends the view's keys, [Len][HeadDim], as float32 whatever
// the storage type (widened or dequantised exactly), to dst and returns the
// extended slice; it allocates nothing when dst has room.
func (v HeadView) AppendKeys(dst []float32) []float32 { return v.keys.appendFloat32(dst, v.headDim) }

// AppendValues is AppendKeys for the values.
func (v HeadView) AppendValues(dst []float32) []float32 {
	return v.values.appendFloat32(dst, v.headDim)
}

// Len is the number of entries in the view.
func (v HeadView) Len() int { return len(v.Positions) }

// New returns an empty cache for the model and compression settings in cfg,
// or an error naming the first invalid field.
func New(cfg Config) (*KVCache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := newShell(cfg, cfg.Layers)
	for range cfg.Layers {
		L := layer{heads: make([]head, 0, cfg.KVHeads)}
		for range cfg.KVHeads {
			L.heads = append(L.heads, c.emptyHead())
		}
		c.layers = append(c.layers, L)
	}
	return c, nil
}

// newShell returns a cache of a validated configuration with room for, but
// none of, its layers (restore adds them as it reads them).
func newShell(cfg Config, layers int) *KVCache {
	g := cfg.Heads / cfg.KVHeads
	return &KVCache{cfg: cfg, group: g, layers: make([]layer, 0, layers), attnInv: make([]float32, g)}
}

// emptyHead is a KV head holding nothing, in the cache's element type.
func (c *KVCache) emptyHead() head {
	return head{k: newRows(c.cfg.KeyElement), v: newRows(c.cfg.ValueElement)}
}

// Config returns the cache's configuration with defaults filled in.
func (c *KVCache) Config() Config { return c.cfg }

// Append adds tokens to one layer: a prompt chunk or one or more decode
// tokens. k and v hold [tokens][KVHeads][HeadDim] values (post-RoPE keys,
// raw values); q holds the same tokens' post-RoPE queries,
// [tokens][Heads][HeadDim], or is nil when they are given to Attend instead
// or nothing needs them (only the last Window tokens' queries are needed
// for scoring, all of them for H2O). The new entries take positions counting
// on from the number of tokens ever appended to the layer, and are kept
// until a Compress scores the layer again.
//
// On error the cache is unchanged.
func (c *KVCache) Append(layer int, q, k, v []float32) error {
	if layer < 0 || layer >= len(c.layers) {
		return invalidf("Append: layer = %d, want 0 ≤ layer < %d", layer, len(c.layers))
	}
	d, row := c.cfg.HeadDim, c.cfg.KVHeads*c.cfg.HeadDim
	if len(k) == 0 || len(k)%row != 0 {
		return invalidf("Append: len(k) = %d, want a positive multiple of KVHeads·HeadDim = %d", len(k), row)
	}
	if len(v) != len(k) {
		return invalidf("Append: len(v) = %d, want len(k) = %d", len(v), len(k))
	}
	t := len(k) / row
	qrow := c.cfg.Heads * d
	if q != nil && len(q) != t*qrow {
		return invalidf("Append: len(q) = %d, want tokens·Heads·HeadDim = %d (or nil)", len(q), t*qrow)
	}
	L := &c.layers[layer]
	if L.tokens+t > math.MaxInt32 {
		return invalidf("Append: layer %d would exceed %d tokens", layer, math.MaxInt32)
	}
	c.settle(L) // the new rows go after the entries held
	if err := c.appendRows(layer, k, v, t); err != nil {
		return err
	}
	acc := c.cfg.Policy.accumulates
	for kv := range L.heads {
		h := &L.heads[kv]
		room := c.appendRoom(h, t)
		h.k.extend(t, d)
		h.v.extend(t, d)
		h.pos = growBy(h.pos, t, room)
		for i := range t {
			h.pos = append(h.pos, int32(L.tokens+i))
		}
		if acc {
			h.heavy = append(growBy(h.heavy, t, room), make([]float32, t)...)
		}
	}
	L.tokens += t
	if q != nil {
		if skip := c.recordQueries(L, q, t); skip < t && acc {
			c.accumulateHeavy(L, q[skip*c.cfg.Heads*d:], t-skip)
		}
	}
	if L.limit > 0 && c.cfg.Policy.decode == decodeOldest {
		c.evictOldest(L)
	}
	return nil
}

// Reserve makes room in every KV head of a layer for tokens more entries,
// so that appending them, in any number of calls, moves none of the
// entries held. A host that knows a prompt's length and appends it in
// chunks, without compressing between them, reserves it before the first
// chunk, and the prompt is stored once, as one Append of it stores it.
// Without it, storage that runs out moves to an array twice the size, so
// such a prompt is copied about once more and allocates about as much
// again on the way. The room is memory the cache keeps allocated
// (AllocatedBytes) until a Compress that leaves at least half of a head's
// storage unused moves what it keeps to smaller arrays, as a Compress
// after each chunk does. Reserve does nothing for storage that has the
// room.
//
// On error the cache is unchanged.
func (c *KVCache) Reserve(layer, tokens int) error {
	if layer < 0 || layer >= len(c.layers) {
		return invalidf("Reserve: layer = %d, want 0 ≤ layer < %d", layer, len(c.layers))
	}
	L := &c.layers[layer]
	if tokens < 0 || tokens > math.MaxInt32-L.tokens {
		return invalidf("Reserve: tokens = %d, want 0 ≤ tokens ≤ %d (the tokens layer %d can still take)", tokens, math.MaxInt32-L.tokens, layer)
	}
	d := c.cfg.HeadDim
	for kv := range L.heads {
		h := &L.heads[kv]
		h.k.grow(tokens, tokens, d)
		h.v.grow(tokens, tokens, d)
		h.pos = growBy(h.pos, tokens, tokens)
		if c.cfg.Policy.accumulates {
			h.heavy = growBy(h.heavy, tokens, tokens)
		}
	}
	return nil
}

// appendRows stores the rows of the t tokens in k and v past the length of
// every KV head of a layer, checking them on the way, and leaves the
// lengths to the caller; on a NaN, infinite or out-of-range element it
// names the element. Storage that lacks room for the t rows grows first,
// with the room appendRoom gives.
//
// The rows are read in the order they are in k and v, token by token and
// head by head within it: reading one head's rows, KVHeads·HeadDim apart,
// for each head in turn would take each from a new page of memory when a
// long prompt is appended in one call.
func (c *KVCache) appendRows(layer int, k, v []float32, t int) error {
	d, row := c.cfg.HeadDim, c.cfg.KVHeads*c.cfg.HeadDim
	heads := c.layers[layer].heads
	for kv := range heads {
		h := &heads[kv]
		room := c.appendRoom(h, t)
		h.k.grow(t, room, d)
		h.v.grow(t, room, d)
	}
	for i := range t {
		for kv := range heads {
			h := &heads[kv]
			o := i*row + kv*d
			if h.k.put(h.len()+i, k[o:o+d], d) >= 0 || h.v.put(h.len()+i, v[o:o+d], d) >= 0 {
				return c.appendError(layer, k, v, t)
			}
		}
	}
	return nil
}

// appendRoom is how many more entries a head that lacks room for t more
// gets room for when its storage moves: the t and Window more (the window
// of a prompt whose prefix was appended without its queries), or as many
// as the head holds if that is more, so that capacity at least doubles and
// a prompt appended in many chunks is copied O(1) times, not once per
// chunk.
func (c *KVCache) appendRoom(h *head, t int) int { return max(t+c.cfg.Window, h.len()) }

// appendError is the error of an Append whose rows appendRows could not
// store: it names the element that makes it fail, the first in order of
// KV head, then keys before values, then token (the order in which the
// rows were stored before appendRows read them token by token).
func (c *KVCache) appendError(layer int, k, v []float32, t int) error {
	d, row := c.cfg.HeadDim, c.cfg.KVHeads*c.cfg.HeadDim
	L := &c.layers[layer]
	for kv := range L.heads {
		h := &L.heads[kv]
		for _, s := range []struct {
			what string
			src  []float32
			r    *rows
		}{{"key", k, &h.k}, {"value", v, &h.v}} {
			for tok := range t {
				o := tok*row + kv*d
				if j := s.r.put(h.len()+tok, s.src[o:o+d], d); j >= 0 {
					return invalidf("Append: layer %d, token %d (position %d), KV head %d: %s element %d is %v, want a finite value within %v range",
						layer, tok, L.tokens+tok, kv, s.what, j, s.src[o+j], s.r.elem)
				}
			}
		}
	}
	panic("lava: appendError: every row can be stored")
}

// recordQueries keeps the queries q of the last t tokens of L (positions
// P−t … P−1) that are not known yet, the last 2·Window of them in the
// ring, and returns how many of the t came before (the rest are new). A
// policy that accumulates adds the new queries' attention to the heads'
// sums: Append with accumulateHeavy, Attend from the attention it computes.
func (c *KVCache) recordQueries(L *layer, q []float32, t int) (skip int) {
	W, row := c.cfg.queryRing(), c.cfg.Heads*c.cfg.HeadDim
	first := L.tokens - t
	skip = max(0, L.qNext-first) // tokens whose queries came before
	if skip >= t {
		return t
	}
	if first+skip != L.qNext {
		L.qFrom = first + skip // a gap: the run of known queries starts again
	}
	if L.queries == nil {
		L.queries = make([]float32, W*row)
	}
	for i := max(skip, t-W); i < t; i++ {
		slot := (first + i) % W
		copy(L.queries[slot*row:(slot+1)*row], q[i*row:(i+1)*row])
	}
	L.qNext = L.tokens
	return skip
}

// View returns the entries one KV head of one layer holds. It may first
// move out rows that a Compress evicted from the layer and left in place
// (see AllocatedBytes), so, like every method, it must not run
// concurrently with another on the same cache, Views included.
func (c *KVCache) View(layer, kvHead int) (HeadView, error) {
	if layer < 0 || layer >= len(c.layers) {
		return HeadView{}, invalidf("View: layer = %d, want 0 ≤ layer < %d", layer, len(c.layers))
	}
	if kvHead < 0 || kvHead >= c.cfg.KVHeads {
		return HeadView{}, invalidf("View: kvHead = %d, want 0 ≤ kvHead < %d", kvHead, c.cfg.KVHeads)
	}
	L := &c.layers[layer]
	if L.heads[kvHead].evicted > 0 {
		c.settle(L)
	}
	h := &L.heads[kvHead]
	d := c.cfg.HeadDim
	v := HeadView{Positions: h.pos, keys: h.k, values: h.v, headDim: d,
		KeyRowBytes: h.k.elem.rowBytes(d), ValueRowBytes: h.v.elem.rowBytes(d)}
	v.Keys, v.Keys16, v.KeyBlocks = h.k.raw()
	v.Values, v.Values16, v.ValueBlocks = h.v.raw()
	return v, nil
}

// Len returns the number of entries one KV head of one layer holds, or 0 for
// indices out of range.
func (c *KVCache) Len(layer, kvHead int) int {
	if layer < 0 || layer >= len(c.layers) || kvHead < 0 || kvHead >= c.cfg.KVHeads {
		return 0
	}
	return c.layers[layer].heads[kvHead].held()
}

// Tokens returns the number of tokens ever appended to a layer, which is the
// position the next one takes, or 0 for a layer out of range.
func (c *KVCache) Tokens(layer int) int {
	if layer < 0 || layer >= len(c.layers) {
		return 0
	}
	return c.layers[layer].tokens
}

// Bytes returns the bytes of keys and values the cache holds: entries ×
// 2 × HeadDim × element size, over all layers and heads. The README's and
// Report's memory figures are these. AllocatedBytes gives what the cache
// keeps allocated.
func (c *KVCache) Bytes() int64 {
	var n int64
	for l := range c.layers {
		held, _ := c.LayerBytes(l)
		n += held
	}
	return n
}

// AllocatedBytes returns the bytes of memory the cache keeps allocated:
// the capacity of its key and value storage (held entries plus the room
// kept for decode tokens and growth), positions, rankings, queries and
// scratch. It is what the cache costs the Go heap, apart from small fixed
// headers.
//
// While a cascade is under way (some layer holds no tokens yet), Compress
// may leave the rows it evicts from a layer it scored before in place,
// where moving them down would return no memory, until the layer is next
// read, extended or compressed; Bytes, LayerBytes and AllocatedBytes are
// then exactly what they would be had the rows moved.
func (c *KVCache) AllocatedBytes() int64 {
	n := int64(4*(cap(c.attn)+cap(c.attnInv)+cap(c.evictScore)+cap(c.groupQ)+cap(c.evictKeep)+cap(c.heavyQ)+cap(c.heavyZ)+cap(c.splitRows)) + cap(c.evictDrop))
	if c.pool != nil {
		n += c.pool.bytes()
	}
	for l := range c.layers {
		_, alloc := c.LayerBytes(l)
		n += alloc
	}
	return n
}

// LayerBytes returns the key and value bytes one layer holds and the bytes
// it keeps allocated (as AllocatedBytes counts them), or zeros for a layer
// out of range.
func (c *KVCache) LayerBytes(layer int) (held, allocated int64) {
	if layer < 0 || layer >= len(c.layers) {
		return 0, 0
	}
	L := &c.layers[layer]
	allocated = int64(4*cap(L.queries) + 8*cap(L.winners) + 8*(cap(L.cand)+cap(L.off)))
	for kv := range L.heads {
		h := &L.heads[kv]
		held += int64(h.held())
		allocated += h.k.capBytes() + h.v.capBytes() + int64(4*(cap(h.pos)+cap(h.order)+cap(h.heavy)))
	}
	return held * c.EntryBytes(), allocated
}

// Reset empties the cache for a new sequence with the same configuration,
// keeping its storage: appending to it allocates nothing until it holds
// more than it held before.
func (c *KVCache) Reset() {
	for l := range c.layers {
		L := &c.layers[l]
		heads, queries := L.heads, L.queries
		for kv := range heads {
			h := &heads[kv]
			h.k.reset()
			h.v.reset()
			h.pos, h.order, h.heavy, h.evicted = h.pos[:0], h.order[:0], h.heavy[:0], 0
		}
		*L = layer{heads: heads, queries: queries, winners: L.winners[:0], cand: L.cand[:0], off: L.off[:0]}
	}
}

// EntryBytes returns the bytes one entry (a key and a value of one KV head)
// takes: a key row and a value row in their storage types (4·HeadDim each
// for Float32, 2·HeadDim for Float16, 34 or 18 bytes per 32 elements for
// Q8_0 or Q4_0). A full cache of n tokens holds n × Layers × KVHeads ×
// EntryBytes.
func (c *KVCache) EntryBytes() int64 {
	d := c.cfg.HeadDim
	return int64(c.cfg.KeyElement.rowBytes(d) + c.cfg.ValueElement.rowBytes(d))
}
