package llama

import (
	"fmt"

	"github.com/lavakv/lava"
)

// Sequence is one token stream through a Model, with its cache and the
// scratch buffers of the forward pass. It is not safe for concurrent use.
//
// Tokens go in through three doors: Prefill runs a prompt on an empty cache
// as one chunk, Extend runs tokens in chunks and compresses the cache after
// each (a chunked prefill, or a later turn of a conversation), and Step
// decodes one token. All three run every layer's attention through
// KVCache.Attend, so each token sees what the cache holds when it arrives.
type Sequence struct {
	m     *Model
	cache *lava.KVCache

	// The forward pass's buffers, [tokens][…] rows, grown to the longest
	// chunk run so far so that decoding allocates nothing.
	x, att, q []float32 // [Dim] a row
	k, v      []float32 // [KVHeads·HeadDim] a row
	xb, xb2   []float32 // [Dim]
	hb, hb2   []float32 // [FFN]
	logits    []float32 // [Vocab]
	// attn holds each layer's attention output of the last token run,
	// [Heads·HeadDim] per layer, before the output projection.
	attn [][]float32
	// peak is the most key/value bytes the cache held after any Append,
	// Attend or Compress the sequence made.
	peak int64
	one  [1]int // Step's token
}

// NewSequence starts a sequence whose keys and values go to cache, which
// must be empty and have the model's dimensions (see Model.CacheConfig).
func (m *Model) NewSequence(cache *lava.KVCache) (*Sequence, error) {
	if err := m.checkShape(cache); err != nil {
		return nil, err
	}
	if n := cache.Tokens(0); n != 0 {
		return nil, fmt.Errorf("llama: cache holds %d tokens, want an empty one (Continue takes a filled one)", n)
	}
	return m.newSequence(cache), nil
}

// Continue starts a sequence over cache, which already holds this model's
// keys and values of a prompt (for example a KVCache.CloneWith copy of a
// prefilled cache under another policy), so Step continues after it.
func (m *Model) Continue(cache *lava.KVCache) (*Sequence, error) {
	if err := m.checkShape(cache); err != nil {
		return nil, err
	}
	return m.newSequence(cache), nil
}

func (m *Model) checkShape(cache *lava.KVCache) error {
	c := cache.Config()
	if c.Layers != m.Layers || c.Heads != m.Heads || c.KVHeads != m.KVHeads || c.HeadDim != m.HeadDim {
		return fmt.Errorf("llama: cache has %d layers, %d heads, %d KV heads, head dim %d; the model %d, %d, %d, %d",
			c.Layers, c.Heads, c.KVHeads, c.HeadDim, m.Layers, m.Heads, m.KVHeads, m.HeadDim)
	}
	return nil
}

func (m *Model) newSequence(cache *lava.KVCache) *Sequence {
	s := &Sequence{
		m:      m,
		cache:  cache,
		xb:     make([]float32, m.Dim),
		xb2:    make([]float32, m.Dim),
		hb:     make([]float32, m.FFN),
		hb2:    make([]float32, m.FFN),
		logits: make([]float32, m.Vocab),
		attn:   make([][]float32, m.Layers),
		peak:   cache.Bytes(),
	}
	for l := range s.attn {
		s.attn[l] = make([]float32, m.Dim)
	}
	s.grow(1)
	return s
}

// grow makes the row buffers hold t tokens.
func (s *Sequence) grow(t int) {
	if len(s.x) >= t*s.m.Dim {
		return
	}
	dim, kvDim := s.m.Dim, s.m.KVHeads*s.m.HeadDim
	s.x, s.att, s.q = make([]float32, t*dim), make([]float32, t*dim), make([]float32, t*dim)
	s.k, s.v = make([]float32, t*kvDim), make([]float32, t*kvDim)
}

// Cache returns the sequence's cache.
func (s *Sequence) Cache() *lava.KVCache { return s.cache }

// Pos returns the number of tokens fed so far, the position of the next.
func (s *Sequence) Pos() int { return s.cache.Tokens(0) }

// PeakBytes returns the most key/value bytes (KVCache.Bytes) the cache held
// after any Append, Attend or Compress this sequence made, from the bytes it
// held when the sequence started.
func (s *Sequence) PeakBytes() int64 { return s.peak }

// observe records the cache's bytes in the peak.
func (s *Sequence) observe() { s.peak = max(s.peak, s.cache.Bytes()) }

// Clone returns an independent copy of the sequence, its cache included
// (a prefilled prompt can then be continued in two ways).
func (s *Sequence) Clone() *Sequence {
	n := s.m.newSequence(s.cache.Clone())
	for l := range n.attn {
		copy(n.attn[l], s.attn[l])
	}
	n.peak = s.peak
	return n
}

// Attention returns layer l's attention output at the last token run (the
// concatenated heads, [Heads·HeadDim], before the output projection). It
// is overwritten by the next Prefill, Extend or Step.
func (s *Sequence) Attention(l int) []float32 { return s.attn[l] }

func (s *Sequence) checkTokens(tokens []int) error {
	for i, tok := range tokens {
		if tok < 0 || tok >= s.m.Vocab {
			return fmt.Errorf("llama: token %d = %d, want 0 ≤ token < %d", i, tok, s.m.Vocab)
		}
	}
	return nil
}

// Prefill runs the prompt tokens as one chunk on an empty cache and returns
// the logits of the last token (valid until the next Prefill, Extend or
// Step). It does not compress: call the cache's Compress after it, or use
// Extend, which does.
func (s *Sequence) Prefill(tokens []int) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("llama: Prefill of no tokens, want at least one")
	}
	if n := s.cache.Tokens(0); n != 0 {
		return nil, fmt.Errorf("llama: Prefill with %d tokens already in the cache, want an empty cache (Extend continues a filled one)", n)
	}
	if err := s.checkTokens(tokens); err != nil {
		return nil, err
	}
	return s.forward(tokens)
}

// Extend runs tokens at the next positions in chunks of at most chunk
// tokens, calling KVCache.Compress after each chunk, and returns the logits
// of the last token and the report of the last Compress. On an empty cache
// it is a chunked prefill: the cache then holds about its budget plus one
// chunk per head at most, and each chunk's hidden states are computed over
// the compressed past. On a filled one it is a later turn: the new tokens'
// window re-scores what the cache holds. With chunk ≥ len(tokens) it is
// Prefill (on an empty cache) followed by one Compress.
func (s *Sequence) Extend(tokens []int, chunk int) ([]float32, lava.Report, error) {
	if len(tokens) == 0 {
		return nil, lava.Report{}, fmt.Errorf("llama: Extend of no tokens, want at least one")
	}
	if chunk < 1 {
		return nil, lava.Report{}, fmt.Errorf("llama: Extend with chunk = %d, want ≥ 1", chunk)
	}
	if err := s.checkTokens(tokens); err != nil {
		return nil, lava.Report{}, err
	}
	var logits []float32
	var rep lava.Report
	for at := 0; at < len(tokens); at += chunk {
		var err error
		if logits, err = s.forward(tokens[at:min(at+chunk, len(tokens))]); err != nil {
			return nil, lava.Report{}, err
		}
		if rep, err = s.cache.Compress(); err != nil {
			return nil, lava.Report{}, fmt.Errorf("llama: Compress after the chunk at token %d: %w", at, err)
		}
		s.observe()
	}
	return logits, rep, nil
}

// forward runs tokens, which have been checked, at the next positions
// through every layer and returns the logits of the last. Each layer
// appends the tokens' keys and values, then attends with their queries
// through KVCache.Attend (which keeps the queries scoring needs) over what
// the cache holds, causally by position.
func (s *Sequence) forward(tokens []int) ([]float32, error) {
	m := s.m
	T, dim, kvDim := len(tokens), m.Dim, m.KVHeads*m.HeadDim
	pos := s.cache.Tokens(0)
	s.grow(T)
	x, att, q, k, v := s.x[:T*dim], s.att[:T*dim], s.q[:T*dim], s.k[:T*kvDim], s.v[:T*kvDim]
	for i, t := range tokens {
		copy(x[i*dim:(i+1)*dim], m.embed[t*dim:(t+1)*dim])
	}
	eps := float32(m.RMSEps)
	for l := range m.blocks {
		b := &m.blocks[l]
		for t := range T {
			rmsnorm(s.xb, x[t*dim:(t+1)*dim], b.attnNorm, eps)
			qt, kt := q[t*dim:(t+1)*dim], k[t*kvDim:(t+1)*kvDim]
			matvec(qt, b.wq, s.xb)
			matvec(kt, b.wk, s.xb)
			matvec(v[t*kvDim:(t+1)*kvDim], b.wv, s.xb)
			m.rope(qt, pos+t)
			m.rope(kt, pos+t)
		}
		if err := s.cache.Append(l, nil, k, v); err != nil {
			return nil, fmt.Errorf("llama: layer %d: %w", l, err)
		}
		s.observe()
		if err := s.cache.Attend(l, q, att); err != nil {
			return nil, fmt.Errorf("llama: layer %d: %w", l, err)
		}
		s.observe()
		copy(s.attn[l], att[(T-1)*dim:])
		s.blockRest(b, x, att)
	}
	return s.finish(x[(T-1)*dim:]), nil
}

// blockRest finishes block b for each token's row of x, given its attention
// output in att: x += wo·att, then the feed-forward block.
func (s *Sequence) blockRest(b *block, x, att []float32) {
	dim := s.m.Dim
	for t := range len(x) / dim {
		xt := x[t*dim : (t+1)*dim]
		matvec(s.xb2, b.wo, att[t*dim:(t+1)*dim])
		for i := range xt {
			xt[i] += s.xb2[i]
		}
		s.ffn(b, xt, s.hb, s.hb2)
	}
}

// ffn adds the SwiGLU feed-forward block to x: w2·(silu(w1·n) ⊙ w3·n) with
// n = rmsnorm(x).
func (s *Sequence) ffn(b *block, x, hb, hb2 []float32) {
	rmsnorm(s.xb, x, b.ffnNorm, float32(s.m.RMSEps))
	matvec(hb, b.w1, s.xb)
	matvec(hb2, b.w3, s.xb)
	for i := range hb {
		hb[i] = silu(hb[i]) * hb2[i]
	}
	matvec(s.xb2, b.w2, hb)
	for i := range x {
		x[i] += s.xb2[i]
	}
}

// finish returns the logits of the final hidden state x.
func (s *Sequence) finish(x []float32) []float32 {
	rmsnorm(s.xb, x, s.m.outNorm, float32(s.m.RMSEps))
	matvec(s.logits, s.m.output, s.xb)
	return s.logits
}

// Step feeds one token at the next position and returns its logits (valid
// until the next Prefill, Extend or Step). Each layer appends the token's
// key and value to the cache and attends over the cache with
// KVCache.Attend; with Config.DecodeSlack set, that Attend compresses the
// cache when the slack is used up. In steady state it allocates nothing.
func (s *Sequence) Step(token int) ([]float32, error) {
	s.one[0] = token
	if err := s.checkTokens(s.one[:]); err != nil {
		return nil, err
	}
	return s.forward(s.one[:])
}

// Generate samples up to n tokens, starting from logits (those of the last
// token fed) and feeding each sampled token back with Step, except the last,
// which needs no logits. pick chooses a token from logits; generation stops
// before a token for which stop returns true. emit, if not nil, is called
// with each token as it is chosen. It returns the tokens generated.
func (s *Sequence) Generate(logits []float32, n int, pick func([]float32) int, stop func(int) bool, emit func(int)) ([]int, error) {
	var out []int
	for i := range n {
		tok := pick(logits)
		if stop != nil && stop(tok) {
			break
		}
		out = append(out, tok)
		if emit != nil {
			emit(tok)
		}
		if i == n-1 {
			break
		}
		var err error
		if logits, err = s.Step(tok); err != nil {
			return out, err
		}
	}
	return out, nil
}
