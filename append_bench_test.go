package lava

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// BenchmarkAppend appends a 4096-token prompt in chunks of 512 to one layer
// of the Llama-3-8B shape (8 KV heads of 128), into storage kept by Reset,
// so it measures the copy (and its validation), not allocation. SetBytes is
// the key and value input read.
func BenchmarkAppend(b *testing.B) {
	for _, el := range []Element{Float32, Float16} {
		b.Run(fmt.Sprintf("elem=%v", el), func(b *testing.B) {
			cfg := Config{Layers: 1, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: 512, KeyElement: el, ValueElement: el}
			const n, chunk = 4096, 512
			rng := rand.New(rand.NewPCG(1, 1))
			k := make([]float32, n*cfg.KVHeads*cfg.HeadDim)
			for i := range k {
				k[i] = float32(rng.NormFloat64())
			}
			c := newCache(b, cfg)
			row := cfg.KVHeads * cfg.HeadDim
			fill := func() {
				c.Reset()
				for lo := 0; lo < n; lo += chunk {
					if err := c.Append(0, nil, k[lo*row:(lo+chunk)*row], k[lo*row:(lo+chunk)*row]); err != nil {
						b.Fatal(err)
					}
				}
			}
			fill()
			b.SetBytes(int64(2 * 4 * len(k)))
			b.ReportAllocs()
			for b.Loop() {
				fill()
			}
		})
	}
}

// BenchmarkAppendFresh appends a 4096-token prompt, with its queries, to
// every layer of a fresh cache of the Llama-3-8B shape (4 of its 32 layers,
// 32 query heads, 8 KV heads of 128): what prefilling a new sequence pays,
// growth included. The prompt comes in chunks of 512 (chunks=512x8), in
// one call (chunks=4096), or as the prefix without queries and then the
// window with them (chunks=4064+32, as BenchmarkCompress and examples/bench
// append it); op=reserve+append reserves the prompt's length in every
// layer first (KVCache.Reserve). SetBytes is the key and value bytes the
// cache stores; B/op is what a prompt allocates.
//
// Beside it, the roofline: op=copy is one copy of as many bytes into a
// buffer made once; op=makecopy one into a buffer made (zeroed) for each
// prompt, what storage grown by make or slices.Grow pays at least;
// op=clone one into a buffer the runtime allocates without zeroing
// (slices.Clone), the least any fresh copy pays. Steady state needs enough
// iterations for the heap to stop growing (-benchtime 20x): before that,
// new memory from the kernel costs a page fault per 4 KiB.
func BenchmarkAppendFresh(b *testing.B) {
	const n = 4096
	for _, el := range []Element{Float32, Float16} {
		cfg := Config{Layers: 4, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: 512, KeyElement: el, ValueElement: el}
		c := newCache(b, cfg) // the defaults
		w := c.Config().Window
		rng := rand.New(rand.NewPCG(1, 1))
		k := make([]float32, n*cfg.KVHeads*cfg.HeadDim)
		for i := range k {
			k[i] = float32(rng.NormFloat64())
		}
		q := make([]float32, n*cfg.Heads*cfg.HeadDim)
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		row, qrow := cfg.KVHeads*cfg.HeadDim, cfg.Heads*cfg.HeadDim
		stored := int64(n*cfg.Layers*cfg.KVHeads) * c.EntryBytes()
		for _, s := range []struct {
			name   string
			chunks []int // tokens per Append
			prefix bool  // the first Append without queries
			op     string
		}{
			{"512x8", []int{512, 512, 512, 512, 512, 512, 512, 512}, false, "append"},
			{"512x8", []int{512, 512, 512, 512, 512, 512, 512, 512}, false, "reserve+append"},
			{"4096", []int{n}, false, "append"},
			{fmt.Sprintf("%d+%d", n-w, w), []int{n - w, w}, true, "append"},
		} {
			b.Run(fmt.Sprintf("elem=%v/op=%s/chunks=%s", el, s.op, s.name), func(b *testing.B) {
				b.SetBytes(stored)
				b.ReportAllocs()
				for b.Loop() {
					c := newCache(b, cfg)
					if s.op == "reserve+append" {
						for l := range cfg.Layers {
							if err := c.Reserve(l, n); err != nil {
								b.Fatal(err)
							}
						}
					}
					lo := 0
					for i, t := range s.chunks {
						qt := q[lo*qrow : (lo+t)*qrow]
						if i == 0 && s.prefix {
							qt = nil
						}
						for l := range cfg.Layers {
							if err := c.Append(l, qt, k[lo*row:(lo+t)*row], k[lo*row:(lo+t)*row]); err != nil {
								b.Fatal(err)
							}
						}
						lo += t
					}
				}
			})
		}
		src := make([]byte, stored)
		for i := range src {
			src[i] = byte(i)
		}
		b.Run(fmt.Sprintf("elem=%v/op=copy", el), func(b *testing.B) {
			dst := make([]byte, stored)
			b.SetBytes(stored)
			b.ReportAllocs()
			for b.Loop() {
				copy(dst, src)
			}
		})
		b.Run(fmt.Sprintf("elem=%v/op=makecopy", el), func(b *testing.B) {
			b.SetBytes(stored)
			b.ReportAllocs()
			for b.Loop() {
				// With a capacity, make is not fused with the copy:
				// it zeroes the buffer, as slices.Grow zeroes what it
				// adds.
				dst := make([]byte, stored, stored)
				copy(dst, src)
				sink = dst
			}
		})
		b.Run(fmt.Sprintf("elem=%v/op=clone", el), func(b *testing.B) {
			b.SetBytes(stored)
			b.ReportAllocs()
			for b.Loop() {
				sink = slices.Clone(src) // allocated without zeroing
			}
		})
	}
}

// sink keeps a benchmark's result alive, so that the compiler cannot drop
// the work that made it.
var sink []byte
