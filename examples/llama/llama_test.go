package llama

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/gguf"
	"github.com/lavakv/lava/examples/internal/ggufwrite"
	"github.com/lavakv/lava/examples/internal/modelfile"
	"github.com/lavakv/lava/examples/sample"
	"github.com/lavakv/lava/examples/tokenizer"
)

// Golden output of shared/models/README.md: 200 greedy tokens after BOS.
const goldenText = `Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find it."
Lily was sad and didn't know what to do. She said, "I'm sorry, Lily. I didn't know what to do."
Lily didn't want to help her mom, so she`

var goldenIDs = []int{403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
	410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352}

// longPrompt is over 100 tokens, so a budget of 64 evicts.
const longPrompt = "Once upon a time, there was a little dog named Max. Max liked to run in the park with his friend, a big cat named Tom. One day, Max and Tom found a red ball under a tree. They played with the ball all day. When the sun went down, they were very tired and happy."

func load(tb testing.TB) (*Model, *tokenizer.Tokenizer) {
	tb.Helper()
	m, tok, err := Load(modelfile.PathForTest(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return m, tok
}

// run prefills prompt into a fresh cache with the given budget and window,
// compresses it when compress is set, and decodes n greedy tokens.
func run(tb testing.TB, m *Model, prompt []int, budget, window int, compress bool, n int) ([]int, *Sequence) {
	tb.Helper()
	c, err := lava.New(m.CacheConfig(budget, window))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := m.NewSequence(c)
	if err != nil {
		tb.Fatal(err)
	}
	logits, err := s.Prefill(prompt)
	if err != nil {
		tb.Fatal(err)
	}
	if compress {
		if _, err := c.Compress(); err != nil {
			tb.Fatal(err)
		}
	}
	out, err := s.Generate(logits, n, sample.Argmax, func(t int) bool { return t == 1 }, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return out, s
}

func TestGolden(t *testing.T) {
	m, tok := load(t)
	out, _ := run(t, m, []int{tok.BOS}, 64, 8, true, 200)
	if !slices.Equal(out[:40], goldenIDs) {
		t.Errorf("first 40 greedy ids:\n got %v\nwant %v", out[:40], goldenIDs)
	}
	if got := tok.Decode(append([]int{tok.BOS}, out...)); got != goldenText {
		t.Errorf("greedy text:\n got %q\nwant %q", got, goldenText)
	}
}

// With a budget above the prompt length Compress keeps everything, so the
// compressed cache must generate exactly what the full one does.
func TestBudgetAbovePromptEqualsFull(t *testing.T) {
	m, tok := load(t)
	prompt := tok.Encode("Once upon a time, there was a little dog named Max.")
	if len(prompt) >= 64 {
		t.Fatalf("prompt has %d tokens, want fewer than the budget 64", len(prompt))
	}
	full, _ := run(t, m, prompt, 64, 8, false, 150)
	comp, s := run(t, m, prompt, 64, 8, true, 150)
	if !slices.Equal(full, comp) {
		t.Errorf("compressed generation differs from the full cache:\nfull %v\ncomp %v", full, comp)
	}
	for l := range m.Layers {
		for kv := range m.KVHeads {
			if n := s.Cache().Len(l, kv); n != s.Pos() {
				t.Fatalf("layer %d head %d holds %d entries, want all %d", l, kv, n, s.Pos())
			}
		}
	}
}

// A prompt longer than the budget is evicted from, and decoding continues
// over the smaller cache.
func TestCompressionEvicts(t *testing.T) {
	m, tok := load(t)
	prompt := tok.Encode(longPrompt)
	c, err := lava.New(m.CacheConfig(32, 8))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSequence(c)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := s.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Compress()
	if err != nil {
		t.Fatal(err)
	}
	entry := int64(2 * m.HeadDim * 4)
	if want := int64(len(prompt)*m.Layers*m.KVHeads) * entry; rep.BytesBefore != want {
		t.Errorf("BytesBefore = %d, want %d", rep.BytesBefore, want)
	}
	// On average 32 entries per head and layer are kept (the budget).
	if want := int64(32*m.Layers*m.KVHeads) * entry; rep.BytesAfter > want {
		t.Errorf("BytesAfter = %d, want ≤ %d", rep.BytesAfter, want)
	}
	out, err := s.Generate(logits, 20, sample.Argmax, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 20 || s.Pos() != len(prompt)+19 {
		t.Errorf("generated %d tokens to position %d, want 20 to %d", len(out), s.Pos(), len(prompt)+19)
	}
	if got := c.Bytes(); got != rep.BytesAfter+int64(19*m.Layers*m.KVHeads)*entry {
		t.Errorf("Bytes after 19 steps = %d, want %d + one entry per head per step", got, rep.BytesAfter)
	}
}

// relErr returns ‖got − want‖₂ / ‖want‖₂.
func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

// Prefill computes attention itself; Step goes through KVCache.Attend. Fed
// the same tokens they must agree up to float32 summation order: every
// value is a sum of at most 172 products, so each carries a relative error
// of about 172·2⁻²⁴ ≈ 1e-5; 1e-4 allows for the five layers.
func TestPrefillMatchesSteps(t *testing.T) {
	m, tok := load(t)
	prompt := tok.Encode(longPrompt)
	c, _ := lava.New(m.CacheConfig(1000, 8))
	s, _ := m.NewSequence(c)
	want, err := s.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	var got []float32
	c2, _ := lava.New(m.CacheConfig(1000, 8))
	s2, _ := m.NewSequence(c2)
	for _, id := range prompt {
		if got, err = s2.Step(id); err != nil {
			t.Fatal(err)
		}
	}
	if e := relErr(got, want); e > 1e-4 {
		t.Errorf("Prefill and Step logits differ by %g relative, want ≤ 1e-4", e)
	}
}

// Clone continues independently: a clone's Attention outputs equal the
// original's for the same token, and stepping one leaves the other alone.
func TestCloneAndAttention(t *testing.T) {
	m, tok := load(t)
	_, s := run(t, m, tok.Encode("The cat sat."), 64, 8, true, 3)
	c := s.Clone()
	pos := s.Pos()
	a, _ := s.Step(300)
	a = slices.Clone(a)
	b, _ := c.Step(300)
	if !slices.Equal(a, b) {
		t.Error("a clone stepped with the same token gives different logits")
	}
	for l := range m.Layers {
		if !slices.Equal(s.Attention(l), c.Attention(l)) {
			t.Errorf("layer %d attention differs between clone and original", l)
		}
		if allZero(s.Attention(l)) {
			t.Errorf("layer %d attention output is all zero", l)
		}
	}
	c.Step(301)
	if s.Pos() != pos+1 || c.Pos() != pos+2 {
		t.Errorf("positions %d and %d after stepping the clone, want %d and %d", s.Pos(), c.Pos(), pos+1, pos+2)
	}
}

func allZero(x []float32) bool {
	for _, v := range x {
		if v != 0 {
			return false
		}
	}
	return true
}

// The real model's hyperparameters, as shared/models/README.md gives them.
func TestParams(t *testing.T) {
	m, _ := load(t)
	want := Params{Arch: "llama", Layers: 5, Heads: 8, KVHeads: 4, Dim: 64, FFN: 172, RopeDim: 8, RopeBase: 10000, RMSEps: float64(float32(1e-5)), ContextLength: 2048}
	if m.Params != want {
		t.Errorf("Params = %+v, want %+v", m.Params, want)
	}
}

// FuzzFromGGUF: whatever the metadata and tensor infos of a well-formed
// GGUF file say, FromGGUF returns an error or a model, never panics.
func FuzzFromGGUF(f *testing.F) {
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	// The real metadata is the seed when the model is at hand, with the
	// tensor count set to 0 so that the header reads without the data.
	if p, err := modelfile.Find(); err == nil {
		if b, err := os.ReadFile(p); err == nil && len(b) > 16384 {
			b = bytes.Clone(b[:16384])
			binary.LittleEndian.PutUint64(b[8:], 0)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := gguf.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		FromGGUF(g) // errors are fine
	})
}

func TestErrors(t *testing.T) {
	m, _ := load(t)
	bad, _ := lava.New(lava.Config{Layers: 2, Heads: 8, KVHeads: 4, HeadDim: 8, Budget: 64, Window: 8})
	if _, err := m.NewSequence(bad); err == nil || !strings.Contains(err.Error(), "2 layers") {
		t.Errorf("NewSequence with a 2-layer cache: err = %v, want one naming the layers", err)
	}
	c, _ := lava.New(m.CacheConfig(64, 8))
	s, _ := m.NewSequence(c)
	if _, err := s.Prefill(nil); err == nil {
		t.Error("Prefill(nil) gave no error")
	}
	if _, err := s.Prefill([]int{1, m.Vocab}); err == nil || !strings.Contains(err.Error(), "token 1") {
		t.Errorf("Prefill with id %d: err = %v, want one naming token 1", m.Vocab, err)
	}
	if _, err := s.Prefill([]int{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prefill([]int{1}); err == nil {
		t.Error("a second Prefill gave no error, want one asking for an empty cache")
	}
	if _, err := s.Step(-1); err == nil {
		t.Error("Step(-1) gave no error")
	}
	for _, c := range []struct {
		tokens []int
		chunk  int
		msg    string
	}{{nil, 4, "no tokens"}, {[]int{5}, 0, "chunk = 0"}, {[]int{5, -1}, 4, "token 1"}} {
		if _, _, err := s.Extend(c.tokens, c.chunk); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Extend(%v, %d): err = %v, want one mentioning %q", c.tokens, c.chunk, err, c.msg)
		}
	}
	if _, err := m.NewSequence(c); err == nil {
		t.Error("NewSequence on a used cache gave no error")
	}
}

// elemBound is the largest error rounding to typ may put on element i of
// w (see checkDequant in the gguf tests): F16 half an ulp, ≤ 2⁻¹¹|x| or
// 2⁻²⁵ below the normal range; BF16 ≤ 2⁻⁸|x|; Q8_0 half a quant step plus
// the F16 rounding of the block scale, ≤ amax/254 + amax·2⁻¹¹.
func elemBound(typ gguf.TensorType, w []float32, i int) float64 {
	x := math.Abs(float64(w[i]))
	switch typ {
	case gguf.F16:
		return max(x*0x1p-11, 0x1p-25)
	case gguf.BF16:
		return x * 0x1p-8
	case gguf.Q8_0:
		var amax float64
		for _, y := range w[i/32*32 : i/32*32+32] {
			amax = max(amax, math.Abs(float64(y)))
		}
		return amax/254 + amax*0x1p-11
	}
	return 0
}

// TestQuantisedFormats writes the model's weights as F16, BF16 and Q8_0
// GGUF files, loads them and compares the logits of every prompt position
// with the F32 model's.
//
// The bound: let ε be the worst relative L2 error the format's rounding can
// put on the weights, √(Σ bound_i²)/‖W‖ over all tensors, from the
// per-element bounds of elemBound. The loaded weights must be within ε, and
// the logits of all positions together within 2ε (relative L2). To first
// order each weight matrix passes its relative error to its output once,
// and RMSNorm keeps errors from compounding in scale, so the logit error
// is c·ε with c of order one; here it measures 0.5–0.6 for all three
// formats (single positions reach 2.5ε, which is why the test bounds the
// aggregate). A dequantisation bug (a wrong scale, a shifted block) gives
// errors of order 1.
func TestQuantisedFormats(t *testing.T) {
	path := modelfile.PathForTest(t)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m0, tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode(longPrompt)[:60]
	ref := allLogits(t, m0, prompt)
	orig := map[string][]float32{}
	for _, ti := range f.Tensors {
		if orig[ti.Name], err = f.ReadTensor(ti.Name); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []gguf.TensorType{gguf.F16, gguf.BF16, gguf.Q8_0} {
		t.Run(strings.Fields(typ.String())[0], func(t *testing.T) {
			w := &ggufwrite.File{}
			for _, kv := range f.Metadata {
				w.Metadata = append(w.Metadata, ggufwrite.KV{Key: kv.Key, Value: kv.Value.Raw()})
			}
			types := map[string]gguf.TensorType{}
			for _, ti := range f.Tensors {
				// Norm vectors stay F32, as llama.cpp keeps them; Q8_0
				// cannot hold rows of 172 (ffn_down), which stay F32 too.
				tt := typ
				if len(ti.Dims) < 2 || (typ == gguf.Q8_0 && ti.Dims[0]%32 != 0) {
					tt = gguf.F32
				}
				types[ti.Name] = tt
				w.Tensors = append(w.Tensors, ggufwrite.Tensor{Name: ti.Name, Dims: ti.Dims, Type: tt, Data: orig[ti.Name]})
			}
			b, err := w.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "model.gguf")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			g, err := gguf.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			var errSq, boundSq, normSq float64
			for _, ti := range f.Tensors {
				got, err := g.ReadTensor(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				o := orig[ti.Name]
				for i := range o {
					d := float64(got[i]) - float64(o[i])
					bd := elemBound(types[ti.Name], o, i)
					errSq += d * d
					boundSq += bd * bd
					normSq += float64(o[i]) * float64(o[i])
				}
			}
			eps, werr := math.Sqrt(boundSq/normSq), math.Sqrt(errSq/normSq)
			if werr > eps {
				t.Fatalf("weights' relative error %g exceeds the rounding bound ε = %g", werr, eps)
			}
			m, _, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			got := allLogits(t, m, prompt)
			var worst float64
			for i := range ref {
				worst = max(worst, relErr(got[i], ref[i]))
			}
			all := relErr(slices.Concat(got...), slices.Concat(ref...))
			t.Logf("ε = %.3g, weights %.3g, logits %.3g (worst position %.3g), %d bytes", eps, werr, all, worst, len(b))
			if all > 2*eps {
				t.Errorf("logits' relative error %g exceeds 2ε = %g", all, 2*eps)
			}
		})
	}
}

// allLogits feeds prompt one Step at a time and returns each position's
// logits.
func allLogits(t *testing.T, m *Model, prompt []int) [][]float32 {
	t.Helper()
	c, err := lava.New(m.CacheConfig(1000, 8))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSequence(c)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for _, id := range prompt {
		lg, err := s.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, slices.Clone(lg))
	}
	return out
}

// Continue picks up a filled cache: stepping it gives what stepping the
// sequence that filled it gives.
func TestContinue(t *testing.T) {
	m, tok := load(t)
	_, s := run(t, m, tok.Encode("The cat sat on the mat."), 64, 8, false, 2)
	c, err := m.Continue(s.Cache().Clone())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Step(300)
	a = slices.Clone(a)
	b, _ := c.Step(300)
	if !slices.Equal(a, b) {
		t.Error("a continued copy stepped with the same token gives different logits")
	}
	if _, err := m.NewSequence(s.Cache()); err == nil {
		t.Error("NewSequence accepted a filled cache")
	}
}

// referencePrefill is the forward pass Prefill ran before it went through
// KVCache.Attend: the whole prompt at once, with the causal attention
// computed here by a scalar loop, appending every layer's queries, keys and
// values. It is the oracle that the chunked forward pass must reproduce.
func referencePrefill(m *Model, cache *lava.KVCache, tokens []int) ([]float32, error) {
	T, dim, kvDim, d := len(tokens), m.Dim, m.KVHeads*m.HeadDim, m.HeadDim
	x, xb, att := make([]float32, T*dim), make([]float32, T*dim), make([]float32, T*dim)
	for i, t := range tokens {
		copy(x[i*dim:(i+1)*dim], m.embed[t*dim:(t+1)*dim])
	}
	scores := make([]float32, T)
	s := m.newSequence(cache)
	scale := float32(1 / math.Sqrt(float64(d)))
	group := m.Heads / m.KVHeads
	for l := range m.blocks {
		b := &m.blocks[l]
		q, k, v := make([]float32, T*dim), make([]float32, T*kvDim), make([]float32, T*kvDim)
		for t := range T {
			xt := xb[t*dim : (t+1)*dim]
			rmsnorm(xt, x[t*dim:(t+1)*dim], b.attnNorm, float32(m.RMSEps))
			matvec(q[t*dim:(t+1)*dim], b.wq, xt)
			matvec(k[t*kvDim:(t+1)*kvDim], b.wk, xt)
			matvec(v[t*kvDim:(t+1)*kvDim], b.wv, xt)
			m.rope(q[t*dim:(t+1)*dim], t)
			m.rope(k[t*kvDim:(t+1)*kvDim], t)
		}
		for t := range T {
			for h := range m.Heads {
				qh, kvOff := q[t*dim+h*d:t*dim+(h+1)*d], (h/group)*d
				sc := scores[:t+1]
				mx := float32(math.Inf(-1))
				for j := range sc {
					var dot float32
					for i, qv := range qh {
						dot += qv * k[j*kvDim+kvOff+i]
					}
					sc[j] = dot * scale
					mx = max(mx, sc[j])
				}
				var sum float32
				for j := range sc {
					sc[j] = float32(math.Exp(float64(sc[j] - mx)))
					sum += sc[j]
				}
				out := att[t*dim+h*d : t*dim+(h+1)*d]
				clear(out)
				for j, p := range sc {
					for i := range out {
						out[i] += p / sum * v[j*kvDim+kvOff+i]
					}
				}
			}
		}
		if err := cache.Append(l, q, k, v); err != nil {
			return nil, err
		}
		s.blockRest(b, x, att)
	}
	return slices.Clone(s.finish(x[(T-1)*dim:])), nil
}

// newSeq returns a sequence over a fresh cache configured by cfg.
func newSeq(tb testing.TB, m *Model, cfg lava.Config) *Sequence {
	tb.Helper()
	c, err := lava.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := m.NewSequence(c)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// positions returns every head's kept positions, layer by layer.
func positions(c *lava.KVCache) [][]int32 {
	cfg := c.Config()
	var out [][]int32
	for l := range cfg.Layers {
		for kv := range cfg.KVHeads {
			v, _ := c.View(l, kv)
			out = append(out, slices.Clone(v.Positions))
		}
	}
	return out
}

// Prefill through KVCache.Attend gives the logits of the scalar reference
// up to float32 summation order (the 1e-4 of TestPrefillMatchesSteps), and
// one Compress after it keeps the same entries under every policy tried.
func TestPrefillMatchesReference(t *testing.T) {
	m, tok := load(t)
	prompt := tok.Encode(longPrompt)
	for _, name := range []string{"lava", "snapkv", "h2o", "tova", "cake"} {
		p, _ := lava.PolicyByName(name)
		cfg := m.CacheConfig(32, 8)
		cfg.Policy = p
		ref, _ := lava.New(cfg)
		want, err := referencePrefill(m, ref, prompt)
		if err != nil {
			t.Fatal(err)
		}
		s := newSeq(t, m, cfg)
		got, err := s.Prefill(prompt)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(got, want); e > 1e-4 {
			t.Errorf("%s: Prefill's logits differ from the reference by %g relative, want ≤ 1e-4", name, e)
		}
		if _, err := ref.Compress(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Cache().Compress(); err != nil {
			t.Fatal(err)
		}
		if a, b := positions(s.Cache()), positions(ref); !slices.EqualFunc(a, b, slices.Equal) {
			t.Errorf("%s: Compress after Prefill keeps %v, after the reference %v", name, a, b)
		}
	}
}

// Extend with one chunk is Prefill and one Compress, exactly.
func TestExtendOneChunkIsPrefill(t *testing.T) {
	m, tok := load(t)
	prompt := tok.Encode(longPrompt)
	a := newSeq(t, m, m.CacheConfig(32, 8))
	want, err := a.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	wantRep, _ := a.Cache().Compress()
	b := newSeq(t, m, m.CacheConfig(32, 8))
	got, rep, err := b.Extend(prompt, len(prompt)+5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || !rep.Evicted || rep.BytesAfter != wantRep.BytesAfter {
		t.Errorf("Extend in one chunk: logits equal %v, evicted %v, %d bytes kept; want equal, true, %d",
			slices.Equal(got, want), rep.Evicted, rep.BytesAfter, wantRep.BytesAfter)
	}
	if !slices.EqualFunc(positions(a.Cache()), positions(b.Cache()), slices.Equal) {
		t.Error("Extend in one chunk keeps other entries than Prefill and Compress")
	}
}

// A chunked prefill that evicts nothing computes what one chunk does, up
// to summation order; one that evicts holds at most the budget plus one
// chunk per head, and ends within the budget.
func TestExtendChunked(t *testing.T) {
	m, tok := load(t)
	prompt := tok.Encode(longPrompt)
	whole := newSeq(t, m, m.CacheConfig(1000, 8))
	want, err := whole.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	entry := int64(2 * m.HeadDim * 4)
	perHead := func(b int64) float64 { return float64(b) / float64(entry) / float64(m.Layers*m.KVHeads) }
	for _, chunk := range []int{1, 7, 16, 50} {
		s := newSeq(t, m, m.CacheConfig(1000, 8))
		got, _, err := s.Extend(prompt, chunk)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(got, want); e > 1e-4 {
			t.Errorf("chunk %d without eviction: logits differ from one chunk by %g relative, want ≤ 1e-4", chunk, e)
		}
		s = newSeq(t, m, m.CacheConfig(32, 8))
		if _, _, err := s.Extend(prompt, chunk); err != nil {
			t.Fatal(err)
		}
		if s.Pos() != len(prompt) {
			t.Errorf("chunk %d: position %d after the prompt, want %d", chunk, s.Pos(), len(prompt))
		}
		if p := perHead(s.PeakBytes()); p > float64(32+chunk) {
			t.Errorf("chunk %d: peak %.1f entries per head, want ≤ budget + chunk = %d", chunk, p, 32+chunk)
		}
		if p := perHead(s.Cache().Bytes()); p > 32 {
			t.Errorf("chunk %d: %.1f entries per head after the prefill, want ≤ 32", chunk, p)
		}
	}
}

// A second turn continues the positions of the first and is compressed
// with its own window; without eviction, two turns compute what their
// concatenation does in one chunk.
func TestSecondTurn(t *testing.T) {
	m, tok := load(t)
	turn1 := tok.Encode(longPrompt)
	turn2 := tok.Encode("Then Max saw a bird. The bird was blue and it sang a song for Max and Tom.")[1:] // no BOS
	one := newSeq(t, m, m.CacheConfig(1000, 8))
	want, err := one.Prefill(slices.Concat(turn1, turn2))
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	two := newSeq(t, m, m.CacheConfig(1000, 8))
	if _, _, err := two.Extend(turn1, 32); err != nil {
		t.Fatal(err)
	}
	got, _, err := two.Extend(turn2, 32)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got, want); e > 1e-4 {
		t.Errorf("two turns without eviction differ from one chunk by %g relative, want ≤ 1e-4", e)
	}
	s := newSeq(t, m, m.CacheConfig(32, 8))
	logits, _, err := s.Extend(turn1, 32)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Generate(logits, 10, sample.Argmax, nil, nil)
	if err != nil || len(out) != 10 {
		t.Fatalf("generated %d tokens, err %v", len(out), err)
	}
	at := s.Pos()
	_, rep, err := s.Extend(turn2, 32)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pos() != at+len(turn2) || !rep.Evicted || rep.Layers[0].Tokens != at+len(turn2) {
		t.Errorf("second turn: position %d, evicted %v, layer 0 scored at %d tokens; want %d, true, %d",
			s.Pos(), rep.Evicted, rep.Layers[0].Tokens, at+len(turn2), at+len(turn2))
	}
}

// With a decode slack the cache stays within the budget plus the slack
// (plus the step being appended) however long the generation.
func TestDecodeSlack(t *testing.T) {
	m, tok := load(t)
	cfg := m.CacheConfig(32, 8)
	cfg.DecodeSlack = 8
	s := newSeq(t, m, cfg)
	logits, _, err := s.Extend(tok.Encode("Once upon a time"), 16)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Generate(logits, 200, sample.Argmax, nil, nil)
	if err != nil || len(out) != 200 {
		t.Fatalf("generated %d tokens, err %v", len(out), err)
	}
	entry := int64(2 * m.HeadDim * 4)
	limit := int64((32+8+1)*m.Layers*m.KVHeads) * entry
	if s.PeakBytes() > limit || s.Cache().Bytes() > limit {
		t.Errorf("peak %d bytes, at end %d, want ≤ %d (B + S + 1 entries per head)", s.PeakBytes(), s.Cache().Bytes(), limit)
	}
	if full := int64(s.Pos()*m.Layers*m.KVHeads) * entry; s.PeakBytes() >= full/2 {
		t.Errorf("peak %d bytes of a full %d: the slack did not compress", s.PeakBytes(), full)
	}
}
