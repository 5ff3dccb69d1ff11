//go:build (amd64 || arm64) && gc && !purego

package lava

// Kernel benchmarks with their rooflines measured in the same run, so that
// a noisy machine shows as noise in both and the ratios stay meaningful:
//
//	op=fmapeak  independent FMAs in registers: the compute roof of score
//	%readsum    op=attend's: a vector sum over the head's own bytes, timed
//	            in the same iterations as the attention: the read roof of
//	            a read-only kernel
//	op=copy     the runtime's copy of the same bytes: the roof of copies
//	op=copyrows the same, one copy per row as Append makes them
//
// SetBytes counts the bytes a kernel reads (copy: the bytes copied, each read
// and written once). Compare impl=avx2 (impl=neon) with impl=generic, and each kernel with
// the roofline beside it; docs/BENCHMARKS.md has a table and the command.
//
// The file needs the assembly because the FMA roofline is an assembly loop
// (fmaPeak).

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

// benchImpls runs f as sub-benchmarks impl=avx2 or impl=neon, and
// impl=generic.
func benchImpls(b *testing.B, f func(b *testing.B)) {
	asm := useAsm
	defer func() { useAsm = asm }()
	for _, impl := range []struct {
		name string
		on   bool
	}{{asmImpl, true}, {"generic", false}} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			if impl.on && !asm {
				b.Skip("no assembly kernels on this CPU")
			}
			useAsm = impl.on
			defer func() { useAsm = asm }()
			f(b)
		})
	}
}

func reportGFLOPS(b *testing.B, flopsPerOp float64) {
	b.ReportMetric(flopsPerOp*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func randSlice(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func toF16(x []float32) []uint16 {
	h := make([]uint16, len(x))
	narrowF16Generic(h, x)
	return h
}

// benchRows returns the rows of d elements of x stored as el, as a cache's
// head stores them.
func benchRows(b *testing.B, el Element, x []float32, d int) *rows {
	r := newRows(el)
	n := len(x) / d
	r.grow(n, n, d)
	for i := range n {
		if j := r.put(i, x[i*d:(i+1)*d], d); j >= 0 {
			b.Fatalf("row %d, element %d not storable", i, j)
		}
	}
	r.extend(n, d)
	return &r
}

// benchCopy measures copying n float32s, once per size.
func benchCopy(b *testing.B, seen map[int]bool, n int) {
	if seen[n] {
		return
	}
	seen[n] = true
	b.Run(fmt.Sprintf("op=copy/bytes=%d", 4*n), func(b *testing.B) {
		// Both written first: an untouched source maps the shared
		// zero page and reads from L1.
		src, dst := make([]float32, n), make([]float32, n)
		for i := range src {
			src[i], dst[i] = float32(i), 1
		}
		b.SetBytes(int64(4 * n))
		for b.Loop() {
			copy(dst, src)
		}
	})
}

// attendBenchCache returns a one-layer cache of one KV head of n keys of d
// elements stored as el, with g query heads, and a query token for it.
func attendBenchCache(b *testing.B, rng *rand.Rand, g, d, n int, el Element) (*KVCache, []float32) {
	c := newCache(b, Config{Layers: 1, Heads: g, KVHeads: 1, HeadDim: d, Budget: n, KeyElement: el, ValueElement: el, Workers: 1})
	const chunk = 4096
	k, v := randSlice(rng, chunk*d), randSlice(rng, chunk*d)
	for lo := 0; lo < n; lo += chunk {
		m := min(chunk, n-lo)
		if err := c.Append(0, nil, k[:m*d], v[:m*d]); err != nil {
			b.Fatal(err)
		}
	}
	return c, randSlice(rng, g*d)
}

// benchAttendRoof times Attend of q over c's only head, and after each call
// a vector sum over the bytes the head stores, reporting the rates of both
// and the ratio.
func benchAttendRoof(b *testing.B, c *KVCache, q []float32) {
	h := &c.layers[0].heads[0]
	stored := [2][]float32{storedFloats(&h.k), storedFloats(&h.v)}
	size := 4 * (len(stored[0]) + len(stored[1]))
	out := make([]float32, len(q))
	var attend, sum time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := c.Attend(0, q, out); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if readSum(stored[0])+readSum(stored[1]) == -1 {
			b.Fatal("negative norm")
		}
		attend, sum = attend+t1.Sub(t0), sum+time.Since(t1)
	}
	b.ReportMetric(float64(size)*float64(b.N)/attend.Seconds()/1e9, "GB/s")
	b.ReportMetric(float64(size)*float64(b.N)/sum.Seconds()/1e9, "readsum-GB/s")
	b.ReportMetric(100*sum.Seconds()/attend.Seconds(), "%readsum")
}

// readSum is l1Norm on the vector kernel, also while impl=generic runs.
func readSum(x []float32) float32 {
	asm := useAsm
	useAsm = true
	defer func() { useAsm = asm }()
	return l1Norm(x)
}

// storedFloats returns the bytes r stores as float32s (whole ones; what
// they mean does not matter to a sum that only times the reading).
func storedFloats(r *rows) []float32 {
	f32, f16, q := r.raw()
	switch {
	case len(f32) > 0:
		return f32
	case len(f16) > 0:
		return unsafe.Slice((*float32)(unsafe.Pointer(&f16[0])), len(f16)/2)
	case len(q) > 0:
		return unsafe.Slice((*float32)(unsafe.Pointer(&q[0])), len(q)/4)
	}
	return nil
}

func BenchmarkKernel(b *testing.B) {
	if !useAsm {
		b.Skip("no assembly kernels: the rooflines need them")
	}
	b.Run("op=fmapeak", func(b *testing.B) {
		const iters = 1 << 12
		for b.Loop() {
			fmaPeak(iters)
		}
		reportGFLOPS(b, 192*iters)
	})

	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[int]bool)

	// Scoring as Compress does it: the w = 32 window queries of one head
	// against all of its keys, in every storage type (rows.score, as the
	// cache calls it).
	for _, s := range []struct{ d, nq, nk int }{{128, 32, 4096}, {64, 32, 4096}} {
		q, keys := randSlice(rng, s.nq*s.d), randSlice(rng, s.nk*s.d)
		out := make([]float32, s.nq*s.nk)
		scale := float32(1 / math.Sqrt(float64(s.d)))
		flops := float64(2 * s.nq * s.nk * s.d)
		for _, el := range allElements {
			r := benchRows(b, el, keys, s.d)
			name := fmt.Sprintf("op=score/d=%d/q=%d/keys=%d/elem=%v", s.d, s.nq, s.nk, el)
			b.Run(name, func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					b.SetBytes(int64(4*len(q) + s.nk*el.rowBytes(s.d)))
					for b.Loop() {
						r.score(q, s.nk, s.d, scale, out)
					}
					reportGFLOPS(b, flops)
				})
			})
		}
	}

	// One decoding step of Attend (one token) over one KV head of n keys
	// and its group of g query heads, through KVCache.Attend. The head
	// (32 MiB as float32, 8.5 MiB as Q8_0) is far larger than L2; the
	// quantised types also run a head of 2²⁰ keys (285 MB as Q8_0), far
	// beyond L3. Memory bandwidth on a shared machine varies from run to
	// run, so each iteration also sums the head's stored bytes with the
	// vector kernel (l1Norm, the read roofline) right after the attention,
	// and the benchmark reports both rates and their ratio from the same
	// iterations: GB/s (the keys and values as stored, each byte counted
	// once), readsum-GB/s and %readsum.
	type attendCase struct {
		d, g, n int
		elems   []Element
	}
	var attendCases []attendCase
	for _, g := range []int{1, 2, 4, 8} {
		attendCases = append(attendCases, attendCase{128, g, 32768, allElements})
	}
	for _, g := range []int{1, 4, 8} {
		attendCases = append(attendCases, attendCase{128, g, 1 << 20, quantTypes})
	}
	for _, s := range attendCases {
		for _, el := range s.elems {
			b.Run(fmt.Sprintf("op=attend/d=%d/g=%d/keys=%d/elem=%v", s.d, s.g, s.n, el), func(b *testing.B) {
				c, q := attendBenchCache(b, rng, s.g, s.d, s.n, el)
				benchImpls(b, func(b *testing.B) {
					benchAttendRoof(b, c, q)
				})
			})
		}
	}

	// Compaction: keep every other row of a head, out of place. 2048 rows
	// (1 MiB) fit L2, 32768 (16 MiB) do not.
	for _, s := range []struct{ d, n int }{{128, 2048}, {128, 32768}} {
		idx := make([]int32, s.n/2)
		for i := range idx {
			idx[i] = int32(2 * i)
		}
		src := randSlice(rng, s.n*s.d)
		src16 := toF16(src)
		dst := make([]float32, len(idx)*s.d)
		dst16 := make([]uint16, len(idx)*s.d)
		for _, el := range []Element{Float32, Float16} {
			b.Run(fmt.Sprintf("op=gather/d=%d/rows=%d/keep=%d/elem=%v", s.d, s.n, len(idx), el), func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					if el == Float16 {
						b.SetBytes(int64(2 * len(dst16)))
						for b.Loop() {
							gatherRowsF16(dst16, src16, idx, s.d)
						}
					} else {
						b.SetBytes(int64(4 * len(dst)))
						for b.Loop() {
							gatherRows(dst, src, idx, s.d)
						}
					}
				})
			})
			n := len(dst)
			if el == Float16 {
				n /= 2
			}
			benchCopy(b, seen, n)
		}
	}

	// Append's copy with its check, as rows.append calls it: one call per
	// row of d elements, taking one KV head's rows out of token rows of h
	// heads into that head's storage, every head in turn. Beside it,
	// op=copyrows is the same rows moved by copy (Append without the
	// check), and for float16 op=narrowrows narrows them without checking
	// (op=narrowcheck checks each row after narrowing it, as Append does).
	// 512 tokens are one chunk of BenchmarkAppend (2 MiB, read again for
	// every head from the caches); 4096 are a prompt appended in one call,
	// which for every head walks all 16 MiB with rows 4 KiB apart, each from
	// memory on a new page: latency-bound, so every instruction per row
	// counts. Bytes are the float32 bytes read.
	for _, s := range []struct{ d, h, rows int }{{128, 8, 512}, {128, 8, 4096}} {
		src := randSlice(rng, s.rows*s.h*s.d)
		dst := make([]float32, len(src))
		dst16 := make([]uint16, len(src))
		clear(dst)
		clear(dst16)
		shape := fmt.Sprintf("d=%d/heads=%d/rows=%d", s.d, s.h, s.rows)
		rowsOf := func(f func(dst []float32, dst16 []uint16, src []float32)) {
			for kv := range s.h {
				head, head16 := dst[kv*s.rows*s.d:], dst16[kv*s.rows*s.d:]
				for i := range s.rows {
					o := (i*s.h + kv) * s.d
					f(head[i*s.d:(i+1)*s.d], head16[i*s.d:(i+1)*s.d], src[o:o+s.d])
				}
			}
		}
		b.Run("op=copyrows/"+shape, func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				rowsOf(func(d []float32, _ []uint16, s []float32) { copy(d, s) })
			}
		})
		b.Run("op=copycheck/"+shape, func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(4 * len(src)))
				for b.Loop() {
					rowsOf(func(d []float32, _ []uint16, s []float32) {
						if copyFinite(d, s) >= 0 {
							b.Fatal("not finite")
						}
					})
				}
			})
		})
		b.Run("op=narrowrows/"+shape, func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(4 * len(src)))
				for b.Loop() {
					rowsOf(func(_ []float32, d []uint16, s []float32) { narrowF16(d, s) })
				}
			})
		})
		b.Run("op=narrowcheck/"+shape, func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(4 * len(src)))
				for b.Loop() {
					rowsOf(func(_ []float32, d []uint16, s []float32) {
						narrowF16(d, s)
						if !finiteF16Row(d) {
							b.Fatal("not finite")
						}
					})
				}
			})
		})
	}

	// The copy and check in calls of asmWork elements over 1 Mi elements
	// (4 MiB), beside op=copy of the same bytes.
	{
		const n = 1 << 20
		src, dst := randSlice(rng, n), make([]float32, n)
		clear(dst)
		b.Run(fmt.Sprintf("op=copycheck/n=%d", n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(4 * n)
				for b.Loop() {
					if copyFinite(dst, src) >= 0 {
						b.Fatal("not finite")
					}
				}
			})
		})
		benchCopy(b, seen, n)
	}

	// Widening float16 keys to float32: 1 Mi elements, 2 MiB in, 4 MiB
	// out. Bytes are the bytes written, as for the copy beside it.
	{
		const n = 1 << 20
		src := toF16(randSlice(rng, n))
		dst := make([]float32, n)
		b.Run(fmt.Sprintf("op=widen/n=%d", n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(4 * n)
				for b.Loop() {
					widenF16(dst, src)
				}
			})
		})
		benchCopy(b, seen, n)
	}
}
