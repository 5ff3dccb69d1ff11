package lava

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
)

// stateOf is everything a cache's future behaviour depends on: its
// configuration's plain fields and every layer's state, scratch excluded.
func stateOf(c *KVCache) string {
	cfg := c.cfg
	cfg.Policy = Policy{}
	p := c.cfg.Policy
	return fmt.Sprintf("%+v %s %v %v %v %v %v %v %v %v %v %v %+v", cfg, p.name, p.pool, p.kernel, p.floor, p.alpha, p.beta, p.tau1, p.tau2, p.gamma, p.sinks, p.seed, c.layers)
}

// savedCaches returns caches in interesting states: chunked prefill,
// compressed, decoded with slack, rolled back, for several policies and
// both element types, with the prompt that continues them.
func savedCaches(t *testing.T) []struct {
	name string
	c    *KVCache
	p    prompt
	next int
} {
	var out []struct {
		name string
		c    *KVCache
		p    prompt
		next int
	}
	for _, pol := range []Policy{LAVa(), AdaSnapKV(), CAKE(1, 1, 200), H2O(), TOVA(), StreamingLLM(2), PyramidKV(5).WithPooling(PoolAvg, 3)} {
		for _, el := range allElements {
			cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, KeyElement: el, ValueElement: el, Policy: pol, DecodeSlack: 3}
			const n = 90
			p := randomPrompt(rand.New(rand.NewPCG(67, uint64(el))), cfg, n+40)
			c := newCache(t, cfg)
			for lo := 0; lo < n; lo += 30 {
				for l := range cfg.Layers {
					p.appendRange(t, c, l, lo, lo+30, true)
				}
				if _, err := c.Compress(); err != nil {
					t.Fatal(err)
				}
			}
			qrow := cfg.Heads * cfg.HeadDim
			out1 := make([]float32, qrow)
			for i := n; i < n+10; i++ {
				for l := range cfg.Layers {
					p.appendRange(t, c, l, i, i+1, false)
					if err := c.Attend(l, p.q[l][i*qrow:(i+1)*qrow], out1); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := c.Truncate(n + 8); err != nil {
				t.Fatal(err)
			}
			out = append(out, struct {
				name string
				c    *KVCache
				p    prompt
				next int
			}{fmt.Sprintf("%s/%v", pol.Name(), el), c, p, n + 8})
		}
	}
	return out
}

// Save → restore → continue equals continue: the restored cache has the
// same state, the same Views bit for bit, and decodes on identically.
func TestSaveRestore(t *testing.T) {
	for _, s := range savedCaches(t) {
		data, err := s.c.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var r KVCache // a zero KVCache is a valid receiver
		if err := r.UnmarshalBinary(data); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if stateOf(&r) != stateOf(s.c) || fmt.Sprint(snapshot(&r)) != fmt.Sprint(snapshot(s.c)) {
			t.Fatalf("%s: the restored cache differs", s.name)
		}
		var streamed bytes.Buffer
		if n, err := s.c.WriteTo(&streamed); err != nil || n != int64(len(data)) || !bytes.Equal(streamed.Bytes(), data) {
			t.Fatalf("%s: WriteTo wrote %d bytes (%v), MarshalBinary %d", s.name, n, err, len(data))
		}
		qrow := s.c.cfg.Heads * s.c.cfg.HeadDim
		for _, c := range []*KVCache{s.c, &r} {
			out := make([]float32, qrow)
			for i := s.next; i < s.next+12; i++ {
				for l := range c.cfg.Layers {
					s.p.appendRange(t, c, l, i, i+1, false)
					if err := c.Attend(l, s.p.q[l][i*qrow:(i+1)*qrow], out); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := c.Compress(); err != nil {
				t.Fatal(err)
			}
		}
		if stateOf(&r) != stateOf(s.c) || fmt.Sprint(snapshot(&r)) != fmt.Sprint(snapshot(s.c)) {
			t.Errorf("%s: restored and original caches part ways when decoding goes on", s.name)
		}
	}
}

// Every truncation and a flipped bit anywhere give an ErrInvalid, never a
// panic, and leave the receiver unchanged.
func TestRestoreRejectsDamage(t *testing.T) {
	s := savedCaches(t)[1]
	data, err := s.c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	keep := newCache(t, Config{Layers: 1, Heads: 1, KVHeads: 1, HeadDim: 1, Budget: 40})
	before := stateOf(keep)
	check := func(what string, b []byte) {
		t.Helper()
		err := keep.UnmarshalBinary(b)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: UnmarshalBinary = %v, want an ErrInvalid", what, err)
		}
		if stateOf(keep) != before {
			t.Fatalf("%s: the failed restore changed the receiver", what)
		}
	}
	for n := 0; n < len(data); n += 1 + n/64 {
		check(fmt.Sprintf("truncated to %d bytes", n), data[:n])
	}
	check("a byte too many", append(bytes.Clone(data), 0))
	rng := rand.New(rand.NewPCG(71, 1))
	for range 300 {
		b := bytes.Clone(data)
		i := rng.IntN(len(b))
		b[i] ^= 1 << rng.IntN(8)
		check(fmt.Sprintf("bit flipped at byte %d", i), b)
	}
	var zero KVCache
	if err := zero.UnmarshalBinary([]byte("LAVAKV\x00\x02")); err == nil {
		t.Error("a wrong magic was accepted")
	}
	custom := newCache(t, Config{Layers: 1, Heads: 1, KVHeads: 1, HeadDim: 1, Budget: 40,
		Policy: Custom("mine", byPosition{}, EntropyLayers, JointHeads)})
	if _, err := custom.MarshalBinary(); err == nil || !errors.Is(err, ErrInvalid) {
		t.Errorf("saving a Custom policy: %v, want an ErrInvalid (its Scorer is code)", err)
	}
}

// byPosition is a Scorer that keeps the most recent tokens.
type byPosition struct{}

func (byPosition) Score(in ScoreInput, out []float32) {
	for i := range out {
		out[i] = float32(in.Positions[i])
	}
}

// A lying header (counts far beyond the bytes that follow) allocates no
// more than a small multiple of the input before it fails.
func TestRestoreAllocationBounded(t *testing.T) {
	s := savedCaches(t)[0]
	data, err := s.c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite every 8-byte word in turn with a huge count and restore
	// the prefix up to it plus a little: whatever the word meant, the
	// reader must not allocate what it claims.
	var worst uint64
	for off := 8; off+8 <= len(data) && off < 4096; off += 8 {
		b := bytes.Clone(data[:min(len(data), off+64)])
		copy(b[off:], []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0})
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		var r KVCache
		_ = r.UnmarshalBinary(b)
		runtime.ReadMemStats(&m1)
		worst = max(worst, m1.TotalAlloc-m0.TotalAlloc)
	}
	if worst > 64<<10 {
		t.Errorf("a lying count made a restore of at most 4 KiB allocate %d bytes", worst)
	}
	// A header that claims 65536 layers of 16 KV heads (the most New
	// accepts) and then ends allocates what it read, not a million heads.
	b := bytes.Clone(data[:200])
	for i, v := range []uint64{65536, 16, 16, 1} { // Layers, Heads, KVHeads, HeadDim
		binary.LittleEndian.PutUint64(b[12+8*i:], v)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var r KVCache
	err = r.UnmarshalBinary(b)
	runtime.ReadMemStats(&m1)
	if err == nil || m1.TotalAlloc-m0.TotalAlloc > 64<<10 {
		t.Errorf("a 200-byte header claiming 2²⁰ heads: %v, %d bytes allocated", err, m1.TotalAlloc-m0.TotalAlloc)
	}
}

// FuzzRestore: arbitrary bytes give a cache or an error, never a panic, and
// a restored cache serves Attend and Compress.
func FuzzRestore(f *testing.F) {
	for _, s := range savedCaches(&testing.T{})[:4] {
		data, err := s.c.MarshalBinary()
		if err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c KVCache
		if err := c.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not an ErrInvalid", err)
			}
			return
		}
		cfg := c.cfg
		q := make([]float32, cfg.Heads*cfg.HeadDim)
		for l := range cfg.Layers {
			if c.Tokens(l) > 0 {
				_ = c.Attend(l, q, make([]float32, len(q)))
			}
		}
		_, _ = c.Compress()
		if !reflect.DeepEqual(c.Config().Layers, cfg.Layers) {
			t.Fatal("config changed")
		}
	})
}

// BenchmarkSaveRestore saves and restores one layer of the Llama-3-8B shape
// holding 4096 tokens (32 MiB of keys and values as float32); SetBytes is
// the encoded size.
func BenchmarkSaveRestore(b *testing.B) {
	for _, el := range allElements {
		cfg := Config{Layers: 1, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: 512, KeyElement: el, ValueElement: el}
		const n = 4096
		c := newCache(b, cfg)
		p := randomPrompt(rand.New(rand.NewPCG(1, 1)), cfg, n)
		p.appendLayer(b, c, 0, 512, true)
		data, err := c.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("op=save/elem=%v", el), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var buf bytes.Buffer
			buf.Grow(len(data))
			for b.Loop() {
				buf.Reset()
				if _, err := c.WriteTo(&buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("op=restore/elem=%v", el), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var r KVCache
				if err := r.UnmarshalBinary(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
