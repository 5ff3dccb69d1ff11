package llama

import (
	"fmt"
	"math"

	"github.com/lavakv/lava"
)

// Sequence is one token stream through a Model, with its cache and the
// scratch buffers of the forward pass. It is not safe for concurrent use.
type Sequence struct {
	m     *Model
	cache *lava.KVCache

	x, xb, xb2 []float32 // [Dim]
	q          []float32 // [Heads·HeadDim]
	k, v       []float32 // [KVHeads·HeadDim]
	hb, hb2    []float32 // [FFN]
	logits     []float32 // [Vocab]
	// attn holds each layer's attention output of the last Step,
	// [Heads·HeadDim] per layer, before the output projection.
	attn [][]float32
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
		x:      make([]float32, m.Dim),
		xb:     make([]float32, m.Dim),
		xb2:    make([]float32, m.Dim),
		q:      make([]float32, m.Dim),
		k:      make([]float32, m.KVHeads*m.HeadDim),
		v:      make([]float32, m.KVHeads*m.HeadDim),
		hb:     make([]float32, m.FFN),
		hb2:    make([]float32, m.FFN),
		logits: make([]float32, m.Vocab),
		attn:   make([][]float32, m.Layers),
	}
	for l := range s.attn {
		s.attn[l] = make([]float32, m.Dim)
	}
	return s
}

// Cache returns the sequence's cache.
func (s *Sequence) Cache() *lava.KVCache { return s.cache }

// Pos returns the number of tokens fed so far, the position of the next.
func (s *Sequence) Pos() int { return s.cache.Tokens(0) }

// Clone returns an independent copy of the sequence, its cache included
// (a prefilled prompt can then be continued in two ways).
func (s *Sequence) Clone() *Sequence {
	n := s.m.newSequence(s.cache.Clone())
	for l := range n.attn {
		copy(n.attn[l], s.attn[l])
	}
	return n
}

// Attention returns layer l's attention output at the last Step (the
// concatenated heads, [Heads·HeadDim], before the output projection). It
// is overwritten by the next Step.
func (s *Sequence) Attention(l int) []float32 { return s.attn[l] }

func (s *Sequence) checkToken(i, tok int) error {
	if tok < 0 || tok >= s.m.Vocab {
		return fmt.Errorf("llama: token %d = %d, want 0 ≤ token < %d", i, tok, s.m.Vocab)
	}
	return nil
}

// Prefill runs the prompt tokens, appending each layer's queries, keys and
// values to the cache, and returns the logits of the last token (valid
// until the next Prefill or Step). The cache must be empty; it is not
// compressed here.
func (s *Sequence) Prefill(tokens []int) ([]float32, error) {
	m := s.m
	if len(tokens) == 0 {
		return nil, fmt.Errorf("llama: Prefill of no tokens, want at least one")
	}
	if n := s.cache.Tokens(0); n != 0 {
		return nil, fmt.Errorf("llama: Prefill with %d tokens already in the cache, want an empty cache", n)
	}
	for i, t := range tokens {
		if err := s.checkToken(i, t); err != nil {
			return nil, err
		}
	}
	T, dim, kvDim, d := len(tokens), m.Dim, m.KVHeads*m.HeadDim, m.HeadDim
	x := make([]float32, T*dim)
	for i, t := range tokens {
		copy(x[i*dim:(i+1)*dim], m.embed[t*dim:(t+1)*dim])
	}
	xb := make([]float32, T*dim)
	att := make([]float32, T*dim)
	scores := make([]float32, T)
	hb, hb2 := make([]float32, m.FFN), make([]float32, m.FFN)
	eps := float32(m.RMSEps)
	scale := float32(1 / math.Sqrt(float64(d)))
	group := m.Heads / m.KVHeads
	for l := range m.blocks {
		b := &m.blocks[l]
		// Fresh slices per layer: the cache copies what Append gets, but
		// keeping them separate costs little at prompt sizes.
		q, k, v := make([]float32, T*dim), make([]float32, T*kvDim), make([]float32, T*kvDim)
		for t := range T {
			xt := xb[t*dim : (t+1)*dim]
			rmsnorm(xt, x[t*dim:(t+1)*dim], b.attnNorm, eps)
			matvec(q[t*dim:(t+1)*dim], b.wq, xt)
			matvec(k[t*kvDim:(t+1)*kvDim], b.wk, xt)
			matvec(v[t*kvDim:(t+1)*kvDim], b.wv, xt)
			m.rope(q[t*dim:(t+1)*dim], t)
			m.rope(k[t*kvDim:(t+1)*kvDim], t)
		}
		// Causal attention: token t's head h attends to tokens 0..t of
		// KV head h/group.
		for t := range T {
			for h := range m.Heads {
				qh := q[t*dim+h*d : t*dim+(h+1)*d]
				kvOff := (h / group) * d
				sc := scores[:t+1]
				mx := float32(math.Inf(-1))
				for s := range sc {
					var dot float32
					for i, qv := range qh {
						dot += qv * k[s*kvDim+kvOff+i]
					}
					sc[s] = dot * scale
					mx = max(mx, sc[s])
				}
				var sum float32
				for s := range sc {
					sc[s] = float32(math.Exp(float64(sc[s] - mx)))
					sum += sc[s]
				}
				out := att[t*dim+h*d : t*dim+(h+1)*d]
				clear(out)
				for s, p := range sc {
					p /= sum
					for i := range out {
						out[i] += p * v[s*kvDim+kvOff+i]
					}
				}
			}
		}
		if err := s.cache.Append(l, q, k, v); err != nil {
			return nil, fmt.Errorf("llama: layer %d: %w", l, err)
		}
		for t := range T {
			xt := x[t*dim : (t+1)*dim]
			matvec(s.xb2, b.wo, att[t*dim:(t+1)*dim])
			for i := range xt {
				xt[i] += s.xb2[i]
			}
			s.ffn(b, xt, hb, hb2)
		}
	}
	return s.finish(x[(T-1)*dim:]), nil
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
// until the next Prefill or Step). Each layer appends the token's key and
// value to the cache and attends over the cache with KVCache.Attend.
func (s *Sequence) Step(token int) ([]float32, error) {
	if err := s.checkToken(0, token); err != nil {
		return nil, err
	}
	m := s.m
	pos := s.cache.Tokens(0)
	copy(s.x, m.embed[token*m.Dim:(token+1)*m.Dim])
	for l := range m.blocks {
		b := &m.blocks[l]
		rmsnorm(s.xb, s.x, b.attnNorm, float32(m.RMSEps))
		matvec(s.q, b.wq, s.xb)
		matvec(s.k, b.wk, s.xb)
		matvec(s.v, b.wv, s.xb)
		m.rope(s.q, pos)
		m.rope(s.k, pos)
		if err := s.cache.Append(l, nil, s.k, s.v); err != nil {
			return nil, fmt.Errorf("llama: layer %d: %w", l, err)
		}
		if err := s.cache.Attend(l, s.q, s.attn[l]); err != nil {
			return nil, fmt.Errorf("llama: layer %d: %w", l, err)
		}
		matvec(s.xb2, b.wo, s.attn[l])
		for i := range s.x {
			s.x[i] += s.xb2[i]
		}
		s.ffn(b, s.x, s.hb, s.hb2)
	}
	return s.finish(s.x), nil
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
