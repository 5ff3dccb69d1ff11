// Package llama runs Llama-architecture language models from GGUF files
// (RMSNorm, RoPE, grouped-query attention, SwiGLU) on the CPU in plain Go,
// with a lava.KVCache as the key/value cache. The package reads the
// hyperparameters from the file's "<arch>.…" metadata keys (Params) and the
// weights from its tensors; package gguf reads the file format.
//
// A Sequence is one stream of tokens. Each layer appends the new tokens'
// keys and values to the cache and attends over what the cache holds with
// lava's KVCache.Attend, one token (Step) or a chunk of them (Prefill,
// Extend) at a time. Prefill runs a prompt as one chunk and leaves
// compression to the caller (KVCache.Compress); Extend runs tokens in chunks
// and compresses after each, which bounds the cache by the budget plus one
// chunk during a long prefill and serves later turns of a conversation; a
// cache configured with a decode slack (lava's Config.DecodeSlack) stays
// bounded while Step decodes.
package llama

import (
	"fmt"
	"math"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/gguf"
	"github.com/lavakv/lava/examples/tokenizer"
)

// Model is a loaded model's hyperparameters and weights (float32,
// dequantised). It is read-only and safe to share between Sequences.
type Model struct {
	Params
	HeadDim int
	Vocab   int

	embed   []float32 // [Vocab][Dim]
	blocks  []block
	outNorm []float32 // [Dim]
	output  []float32 // [Vocab][Dim]; the embedding when tied
	// invFreq[i] is RoPE's angle per position for rotation pair i.
	invFreq []float32
}

// block is one transformer layer's weights; matrices are row-major
// [out][in], as GGUF stores them.
type block struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    []float32
	w1, w2, w3        []float32 // gate, down, up
}

// Load reads the model and its tokenizer from the GGUF file at path.
func Load(path string) (*Model, *tokenizer.Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	m, err := FromGGUF(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if tok.Size() != m.Vocab {
		return nil, nil, fmt.Errorf("%s: the tokenizer has %d tokens, the embedding %d rows", path, tok.Size(), m.Vocab)
	}
	return m, tok, nil
}

// FromGGUF reads the model's hyperparameters and weights from f, checking
// every tensor's shape.
func FromGGUF(f *gguf.File) (*Model, error) {
	p, err := readParams(f)
	if err != nil {
		return nil, err
	}
	if p.Arch != "llama" {
		return nil, fmt.Errorf("llama: general.architecture = %q, want \"llama\"", p.Arch)
	}
	m := &Model{Params: p, HeadDim: p.Dim / p.Heads}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, fmt.Errorf("llama: tensor \"token_embd.weight\" is missing")
	}
	if len(emb.Dims) != 2 || emb.Dims[0] != uint64(p.Dim) || emb.Dims[1] < 1 || emb.Dims[1] > maxHyper {
		return nil, fmt.Errorf("llama: tensor \"token_embd.weight\" has dimensions %v, want [%d vocab]", emb.Dims, p.Dim)
	}
	m.Vocab = int(emb.Dims[1])
	kvDim := p.KVHeads * m.HeadDim
	load := func(name string, dims ...int) ([]float32, error) {
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("llama: tensor %q is missing", name)
		}
		same := len(t.Dims) == len(dims)
		for i := range dims {
			same = same && t.Dims[i] == uint64(dims[i])
		}
		if !same {
			return nil, fmt.Errorf("llama: tensor %q has dimensions %v, want %v", name, t.Dims, dims)
		}
		return f.ReadTensor(name)
	}
	if m.embed, err = load("token_embd.weight", p.Dim, m.Vocab); err != nil {
		return nil, err
	}
	if m.outNorm, err = load("output_norm.weight", p.Dim); err != nil {
		return nil, err
	}
	m.output = m.embed // tied unless the file has its own output layer
	if _, ok := f.Tensor("output.weight"); ok {
		if m.output, err = load("output.weight", p.Dim, m.Vocab); err != nil {
			return nil, err
		}
	}
	m.blocks = make([]block, p.Layers)
	for l := range m.blocks {
		b := &m.blocks[l]
		for _, w := range []struct {
			dst  *[]float32
			name string
			dims []int
		}{
			{&b.attnNorm, "attn_norm", []int{p.Dim}},
			{&b.wq, "attn_q", []int{p.Dim, p.Dim}},
			{&b.wk, "attn_k", []int{p.Dim, kvDim}},
			{&b.wv, "attn_v", []int{p.Dim, kvDim}},
			{&b.wo, "attn_output", []int{p.Dim, p.Dim}},
			{&b.ffnNorm, "ffn_norm", []int{p.Dim}},
			{&b.w1, "ffn_gate", []int{p.Dim, p.FFN}},
			{&b.w2, "ffn_down", []int{p.FFN, p.Dim}},
			{&b.w3, "ffn_up", []int{p.Dim, p.FFN}},
		} {
			if *w.dst, err = load(fmt.Sprintf("blk.%d.%s.weight", l, w.name), w.dims...); err != nil {
				return nil, err
			}
		}
	}
	// Pair i rotates by pos·base^(−2i/RopeDim), computed in float32 as
	// llama2.c does so that logits match the reference closely.
	m.invFreq = make([]float32, p.RopeDim/2)
	for i := range m.invFreq {
		m.invFreq[i] = float32(1 / math.Pow(p.RopeBase, float64(float32(2*i)/float32(p.RopeDim))))
	}
	return m, nil
}

// CacheConfig returns a lava configuration with the model's dimensions
// and the given budget and window; other fields keep lava's defaults.
func (m *Model) CacheConfig(budget, window int) lava.Config {
	return lava.Config{Layers: m.Layers, Heads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim, Budget: budget, Window: window}
}

// rmsnorm sets out = x/rms(x)·w, with rms(x) = √(mean(x²) + eps).
func rmsnorm(out, x, w []float32, eps float32) {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	inv := float32(1 / math.Sqrt(float64(ss/float32(len(x))+eps)))
	for i, v := range x {
		out[i] = w[i] * (inv * v)
	}
}

// matvec sets out[i] = W[i]·x for the len(out) rows of W, each len(x) long.
// Four independent sums let the CPU overlap the additions' latency.
func matvec(out, w, x []float32) {
	n := len(x)
	for i := range out {
		row := w[i*n : (i+1)*n]
		var s0, s1, s2, s3 float32
		j := 0
		for ; j+4 <= n; j += 4 {
			r, v := row[j:j+4:j+4], x[j:j+4:j+4]
			s0 += r[0] * v[0]
			s1 += r[1] * v[1]
			s2 += r[2] * v[2]
			s3 += r[3] * v[3]
		}
		for ; j < n; j++ {
			s0 += row[j] * x[j]
		}
		out[i] = (s0 + s1) + (s2 + s3)
	}
}

// rope rotates the first RopeDim elements of each head of x in place, by
// the angles of position pos, in interleaved pairs (x[2i], x[2i+1]).
func (m *Model) rope(x []float32, pos int) {
	d := m.HeadDim
	for i, f := range m.invFreq {
		a := float64(float32(pos) * f)
		c, s := float32(math.Cos(a)), float32(math.Sin(a))
		for h := 0; h < len(x); h += d {
			x0, x1 := x[h+2*i], x[h+2*i+1]
			x[h+2*i] = x0*c - x1*s
			x[h+2*i+1] = x0*s + x1*c
		}
	}
}

func silu(x float32) float32 { return x / (1 + float32(math.Exp(float64(-x)))) }
