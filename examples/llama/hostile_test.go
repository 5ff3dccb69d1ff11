package llama

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lavakv/lava/examples/gguf"
	"github.com/lavakv/lava/examples/internal/ggufwrite"
	"github.com/lavakv/lava/examples/tokenizer"
)

// tiny describes a small synthetic model: dim 8, 2 heads, 1 KV head, FFN
// 12, a vocabulary of the 259 special and byte tokens plus "▁", "a", "b".
type tiny struct {
	layers   uint32 // block_count
	blocks   []int  // the blk.N tensors present
	dim      uint32 // embedding_length
	heads    uint32
	kvHeads  uint32
	ffn      uint32
	extra    int      // tensors named pad.N, to reach a tensor count
	tokens   []string // nil: the 262 tokens
	scores   []float32
	embdRows uint64 // 0: one per token
}

func defaultTiny() tiny {
	return tiny{layers: 2, blocks: []int{0, 1}, dim: 8, heads: 2, kvHeads: 1, ffn: 12}
}

func (c tiny) file() *ggufwrite.File {
	tokens := c.tokens
	if tokens == nil {
		tokens = []string{"<unk>", "<s>", "</s>"}
		for b := range 256 {
			tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
		}
		tokens = append(tokens, "▁", "a", "b")
	}
	scores := c.scores
	if scores == nil {
		scores = make([]float32, len(tokens))
	}
	rows := c.embdRows
	if rows == 0 {
		rows = uint64(len(tokens))
	}
	f := &ggufwrite.File{Metadata: []ggufwrite.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "llama.block_count", Value: c.layers},
		{Key: "llama.attention.head_count", Value: c.heads},
		{Key: "llama.attention.head_count_kv", Value: c.kvHeads},
		{Key: "llama.embedding_length", Value: c.dim},
		{Key: "llama.feed_forward_length", Value: c.ffn},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(1e-5)},
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: gguf.Array{Elem: gguf.TypeString, Values: tokens}},
		{Key: "tokenizer.ggml.scores", Value: gguf.Array{Elem: gguf.TypeFloat32, Values: scores}},
	}}
	// The tensors always have the true shapes of dim 8, 2 heads, 1 KV
	// head, FFN 12; the metadata may lie about them.
	const dim, kvDim, ffn = 8, 4, 12
	add := func(name string, dims ...uint64) {
		n := uint64(1)
		for _, d := range dims {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i%7) / 7
		}
		f.Tensors = append(f.Tensors, ggufwrite.Tensor{Name: name, Dims: dims, Type: gguf.F32, Data: data})
	}
	add("token_embd.weight", dim, rows)
	add("output_norm.weight", dim)
	for _, l := range c.blocks {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", dim)
		add(p+"attn_q.weight", dim, dim)
		add(p+"attn_k.weight", dim, kvDim)
		add(p+"attn_v.weight", dim, kvDim)
		add(p+"attn_output.weight", dim, dim)
		add(p+"ffn_norm.weight", dim)
		add(p+"ffn_gate.weight", dim, ffn)
		add(p+"ffn_down.weight", ffn, dim)
		add(p+"ffn_up.weight", dim, ffn)
	}
	for i := range c.extra {
		add(fmt.Sprintf("pad.%d", i), 1)
	}
	return f
}

func (c tiny) bytes(tb testing.TB) []byte {
	b, err := c.file().Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// loadBytes runs what Load does on a file's bytes.
func loadBytes(b []byte) (*Model, *tokenizer.Tokenizer, error) {
	f, err := gguf.Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, nil, err
	}
	return fromFile(f)
}

func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// loadAllocLimit bounds what reading and loading a file of size bytes may
// allocate: the reader's 6·size + 64 KiB (package gguf), the weights as
// float32 (at most 4 bytes per byte of F32 data, up to 4 per byte for
// Q8_0), the tokenizer's tables (a few words per token, and each token
// takes at least 8 bytes of the file) and the list of weights, about 100
// bytes per 25-byte tensor info; 16 KiB for the runtime around the call.
func loadAllocLimit(size int) uint64 { return 16*uint64(size) + 64<<10 + 16<<10 }

func TestTinyModelLoads(t *testing.T) {
	m, tok, err := loadBytes(defaultTiny().bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Layers != 2 || m.Vocab != 262 || tok.Size() != 262 || m.HeadDim != 4 {
		t.Errorf("loaded %d layers, vocab %d, %d tokens, head dim %d; want 2, 262, 262, 4", m.Layers, m.Vocab, tok.Size(), m.HeadDim)
	}
}

// TestLyingBlockCount: a block_count of 2²⁴ in a small file used to
// allocate 3.6 GB of blocks before any block's tensors were looked at.
func TestLyingBlockCount(t *testing.T) {
	c := defaultTiny()
	c.layers = 1 << 24
	b := c.bytes(t)
	var err error
	n := allocated(func() { _, _, err = loadBytes(b) })
	t.Logf("block_count 2²⁴ in %d bytes: allocated %d (%.1f×)", len(b), n, float64(n)/float64(len(b)))
	if err == nil || !strings.Contains(err.Error(), "llama.block_count = 16777216, but the file has 20 tensors") {
		t.Errorf("err = %v, want one saying the tensors cannot hold 2²⁴ blocks", err)
	}
	if n > loadAllocLimit(len(b)) {
		t.Errorf("allocated %d for a %d-byte file, want ≤ %d", n, len(b), loadAllocLimit(len(b)))
	}
}

func TestInconsistentModels(t *testing.T) {
	nan := make([]float32, 262)
	nan[260] = float32(math.NaN())
	cases := []struct {
		name string
		edit func(*tiny)
		msg  string
	}{
		{"missing middle block", func(c *tiny) { c.layers, c.blocks, c.extra = 3, []int{0, 2}, 9 }, `tensor "blk.1.attn_norm.weight" is missing`},
		{"missing last block", func(c *tiny) { c.layers, c.extra = 3, 9 }, "llama.block_count = 3, but the last block with tensors is 1"},
		{"block beyond block_count", func(c *tiny) { c.layers = 1 }, `llama.block_count = 1, but the file has tensor "blk.1.attn_norm.weight" of block 1`},
		{"heads do not divide dim", func(c *tiny) { c.heads = 3 }, "llama.embedding_length = 8 is not a multiple of llama.attention.head_count = 3"},
		{"KV heads do not divide heads", func(c *tiny) { c.kvHeads = 3 }, "llama.attention.head_count = 2 is not a multiple of llama.attention.head_count_kv = 3"},
		{"KV heads wrong for the tensors", func(c *tiny) { c.kvHeads = 2 }, `tensor "blk.0.attn_k.weight" has dimensions [8 4], want [8 8]`},
		{"dim wrong for the tensors", func(c *tiny) { c.dim = 16 }, `tensor "token_embd.weight" has dimensions [8 262], want [16 vocab]`},
		{"FFN wrong for the tensors", func(c *tiny) { c.ffn = 13 }, `tensor "blk.0.ffn_gate.weight" has dimensions [8 12], want [8 13]`},
		{"more tokens than embedding rows", func(c *tiny) { c.embdRows = 261 }, "the tokenizer has 262 tokens, the embedding 261 rows"},
		{"NaN score", func(c *tiny) { c.scores = nan }, `token 260 ("a") has score NaN`},
		{"fewer scores than tokens", func(c *tiny) { c.scores = make([]float32, 261) }, "261 scores for 262 tokens"},
	}
	for _, tc := range cases {
		c := defaultTiny()
		tc.edit(&c)
		_, _, err := loadBytes(c.bytes(t))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want one mentioning %q", tc.name, err, tc.msg)
		}
	}
}

// TestLoadFromPath checks that Load reports the same errors with the path.
func TestLoadFromPath(t *testing.T) {
	c := defaultTiny()
	c.embdRows = 261
	p := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := os.WriteFile(p, c.bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "261 rows") {
		t.Errorf("err = %v, want one naming the path and the 261 rows", err)
	}
}

// FuzzLoad fuzzes the reader, the loader and the tokenizer together from
// complete small models, with the allocation bound checked on every input.
func FuzzLoad(f *testing.F) {
	f.Add(defaultTiny().bytes(f))
	c := defaultTiny()
	c.layers, c.blocks = 1, []int{0}
	f.Add(c.bytes(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m *Model
		var tok *tokenizer.Tokenizer
		var err error
		if n := allocated(func() { m, tok, err = loadBytes(b) }); n > loadAllocLimit(len(b)) {
			t.Fatalf("loading %d bytes allocated %d, want ≤ %d (err = %v)", len(b), n, loadAllocLimit(len(b)), err)
		}
		if err != nil {
			if errors.Is(err, gguf.ErrTruncated) || errors.Is(err, gguf.ErrFormat) || errors.Is(err, gguf.ErrUnsupported) || strings.Contains(err.Error(), ":") {
				return
			}
			t.Fatalf("error %q does not say where", err)
		}
		if tok.Size() != m.Vocab || len(m.blocks) != m.Layers || m.Dim%m.Heads != 0 || m.Heads%m.KVHeads != 0 {
			t.Fatalf("loaded an inconsistent model: %+v, %d tokens", m.Params, tok.Size())
		}
		tok.Decode(tok.Encode("ab a"))
	})
}

// TestTokenizerAllocation reads a tokenizer of 200,000 distinct short
// tokens, the most tokenizer tables per byte a file can ask for.
func TestTokenizerAllocation(t *testing.T) {
	c := defaultTiny()
	c.tokens = c.file().Metadata[8].Value.(gguf.Array).Values.([]string)
	for i := len(c.tokens); i < 200_000; i++ {
		c.tokens = append(c.tokens, fmt.Sprintf("%x", i))
	}
	b := c.bytes(t)
	var err error
	n := allocated(func() {
		var f *gguf.File
		if f, err = gguf.Read(bytes.NewReader(b), int64(len(b))); err == nil {
			_, err = tokenizer.FromGGUF(f)
		}
	})
	t.Logf("%d tokens in %d bytes: allocated %d (%.1f×)", len(c.tokens), len(b), n, float64(n)/float64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if n > loadAllocLimit(len(b)) {
		t.Errorf("allocated %d for a %d-byte file, want ≤ %d", n, len(b), loadAllocLimit(len(b)))
	}
}
