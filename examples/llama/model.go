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
	"strconv"
	"strings"

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
	m, tok, err := fromFile(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, tok, nil
}

// fromFile reads the model and its tokenizer from f and checks that they
// agree on the vocabulary.
func fromFile(f *gguf.File) (*Model, *tokenizer.Tokenizer, error) {
	m, err := FromGGUF(f)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, nil, err
	}
	if tok.Size() != m.Vocab {
		return nil, nil, fmt.Errorf("llama: the tokenizer has %d tokens, the embedding %d rows", tok.Size(), m.Vocab)
	}
	return m, tok, nil
}

// FromGGUF reads the model's hyperparameters and weights from f. It checks
// the hyperparameters against the tensors (block_count against the blk.N
// tensors present, every tensor's shape against the dimensions) before it
// allocates anything, so what it allocates is the weights the file holds,
// as float32 (up to 4 bytes per byte of data, for Q8_0), and about 100
// bytes per tensor. With gguf.Read's bound, reading and loading a file,
// tokenizer included, allocates less than 16 times its size plus 64 KiB;
// FuzzLoad checks that.
func FromGGUF(f *gguf.File) (*Model, error) {
	p, err := readParams(f)
	if err != nil {
		return nil, err
	}
	if p.Arch != "llama" {
		return nil, fmt.Errorf("llama: general.architecture = %q, want \"llama\"", p.Arch)
	}
	if err := checkBlocks(f, p.Arch+".block_count", p.Layers); err != nil {
		return nil, err
	}
	m := &Model{Params: p, HeadDim: p.Dim / p.Heads}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, fmt.Errorf("llama: tensor \"token_embd.weight\" is missing")
	}
	if len(emb.Dims) != 2 || emb.Dims[0] != uint64(p.Dim) || emb.Dims[1] < 1 || emb.Dims[1] > maxHyper {
		return nil, fmt.Errorf("llama: tensor \"token_embd.weight\" has dimensions %v, want [%d vocab] (%s = %d) with vocab 1 to %d",
			emb.Dims, p.Dim, p.Arch+".embedding_length", p.Dim, maxHyper)
	}
	m.Vocab = int(emb.Dims[1])
	kvDim := p.KVHeads * m.HeadDim
	type weight struct {
		dst  *[]float32
		name string
		dims []int
	}
	weights := []weight{
		{&m.embed, "token_embd.weight", []int{p.Dim, m.Vocab}},
		{&m.outNorm, "output_norm.weight", []int{p.Dim}},
	}
	if _, ok := f.Tensor("output.weight"); ok {
		weights = append(weights, weight{&m.output, "output.weight", []int{p.Dim, m.Vocab}})
	}
	m.blocks = make([]block, p.Layers) // checkBlocks bounded the count by the tensors
	for l := range m.blocks {
		b := &m.blocks[l]
		for _, w := range []weight{
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
			w.name = fmt.Sprintf("blk.%d.%s.weight", l, w.name)
			weights = append(weights, w)
		}
	}
	// Every shape first: a file whose hyperparameters and tensors disagree
	// fails before any weight is read.
	for _, w := range weights {
		t, ok := f.Tensor(w.name)
		if !ok {
			return nil, fmt.Errorf("llama: tensor %q is missing", w.name)
		}
		same := len(t.Dims) == len(w.dims)
		for i := range w.dims {
			same = same && t.Dims[i] == uint64(w.dims[i])
		}
		if !same {
			return nil, fmt.Errorf("llama: tensor %q has dimensions %v, want %v from the hyperparameters (%s)", w.name, t.Dims, w.dims, p.shapeSummary())
		}
	}
	for _, w := range weights {
		if *w.dst, err = f.ReadTensor(w.name); err != nil {
			return nil, err
		}
	}
	if m.output == nil {
		m.output = m.embed // tied: the file has no output layer of its own
	}
	// Pair i rotates by pos·base^(−2i/RopeDim), computed in float32 as
	// llama2.c does so that logits match the reference closely.
	m.invFreq = make([]float32, p.RopeDim/2)
	for i := range m.invFreq {
		m.invFreq[i] = float32(1 / math.Pow(p.RopeBase, float64(float32(2*i)/float32(p.RopeDim))))
	}
	return m, nil
}

// blockTensors is the number of tensors of one transformer block.
const blockTensors = 9

// checkBlocks checks the value layers of metadata key (block_count)
// against the tensors: the file has at least blockTensors tensors per block,
// a tensor blk.N.… for N = layers − 1 and none beyond.
func checkBlocks(f *gguf.File, key string, layers int) error {
	if layers > len(f.Tensors)/blockTensors {
		return fmt.Errorf("llama: %s = %d, but the file has %d tensors, fewer than the %d that many blocks need", key, layers, len(f.Tensors), blockTensors*layers)
	}
	last := -1
	for _, t := range f.Tensors {
		rest, ok := strings.CutPrefix(t.Name, "blk.")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return fmt.Errorf("llama: tensor %q has no block number, want blk.N.…", t.Name)
		}
		if n >= layers {
			return fmt.Errorf("llama: %s = %d, but the file has tensor %q of block %d", key, layers, t.Name, n)
		}
		last = max(last, n)
	}
	if last != layers-1 {
		return fmt.Errorf("llama: %s = %d, but the last block with tensors is %d", key, layers, last)
	}
	return nil
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
