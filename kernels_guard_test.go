//go:build linux

package lava

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"syscall"
	"testing"
	"unsafe"
)

// Canaries catch writes past a buffer, but not reads. These tests place
// every kernel argument against an inaccessible page, once ending exactly
// where the page begins and once starting exactly where one ends, so that
// an assembly kernel reading even one byte outside its slices faults.

// guardedBytes returns n bytes that end at (or, with atStart, begin at) a
// PROT_NONE page, unmapped when the test ends.
func guardedBytes(t *testing.T, n int, atStart bool) []byte {
	t.Helper()
	page := syscall.Getpagesize()
	data := (n + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, data+2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[:page], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mprotect(mem[page+data:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	if atStart {
		return mem[page : page+n : page+n]
	}
	return mem[page+data-n : page+data : page+data]
}

func guardedF32(t *testing.T, rng *rand.Rand, n int, atStart bool) []float32 {
	b := guardedBytes(t, 4*n, atStart)
	if n == 0 {
		return []float32{}
	}
	x := unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func guardedF16(t *testing.T, rng *rand.Rand, n int, atStart bool) []uint16 {
	b := guardedBytes(t, 2*n, atStart)
	if n == 0 {
		return []uint16{}
	}
	x := unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), n)
	for i := range x {
		x[i] = f32ToF16(float32(rng.NormFloat64()))
	}
	return x
}

// noFault runs f and fails the test if it touches an inaccessible page.
func noFault(t *testing.T, what string, f func()) {
	t.Helper()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: %v", what, r)
		}
	}()
	f()
}

func TestKernelsStayInsideTheirSlices(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, atStart := range []bool{false, true} {
			f32 := func(n int) []float32 { return guardedF32(t, rng, n, atStart) }
			f16 := func(n int) []uint16 { return guardedF16(t, rng, n, atStart) }
			// Quantised rows: blocks with finite scales against a page.
			blocks := func(e Element, d, n int) []byte {
				b := guardedBytes(t, n*e.rowBytes(d), atStart)
				copy(b, randomBlocks(rng, e, len(b)/e.blockBytes(quantBlock)+1))
				for i := 0; i+1 < len(b); i += e.blockBytes(blockLen(d)) {
					b[i+1] &^= 0x40 // a finite scale for rows that are one block
				}
				return b
			}
			bytes := func(n int) []byte { return guardedBytes(t, n, atStart) }
			for _, e := range quantTypes {
				for _, d := range []int{2, 8, 32, 64, 96, 128} {
					for _, n := range []int{0, 1, 2, 5, 33} {
						what := fmt.Sprintf("%v d=%d n=%d atStart=%v", e, d, n, atStart)
						noFault(t, "dequant "+what, func() { dequant(f32(n*d), blocks(e, d, n), e, d) })
						noFault(t, "scoreQuant "+what, func() { scoreQuant(f32(3*d), blocks(e, d, n), e, d, 0.5, f32(3*n)) })
						noFault(t, "weightedSumsQuant "+what, func() { weightedSumsQuant(f32(3*n), blocks(e, d, n), e, f32(3*d), d) })
						noFault(t, "l1NormsQuant "+what, func() { l1NormsQuant(f32(n), blocks(e, d, n), e, d) })
					}
				}
			}
			for n := range 80 {
				what := fmt.Sprintf("n=%d atStart=%v", n, atStart)
				noFault(t, "maxOf "+what, func() { maxOf(f32(n)) })
				noFault(t, "expSub "+what, func() { expSub(f32(n), 1) })
				noFault(t, "axpy "+what, func() { axpy(0.5, f32(n), f32(n)) })
				noFault(t, "l1Norm "+what, func() { l1Norm(f32(n)) })
				noFault(t, "l1NormF16 "+what, func() { l1NormF16(f16(n)) })
				noFault(t, "widenF16 "+what, func() { widenF16(f32(n), f16(n)) })
				noFault(t, "narrowF16 "+what, func() { narrowF16(f16(n), f32(n)) })
				noFault(t, "copyFinite "+what, func() { copyFinite(f32(n), f32(n)) })
				noFault(t, "finiteF16Row "+what, func() { finiteF16Row(f16(n)) })
			}
			for _, d := range []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 33, 64, 100, 128} {
				for _, nq := range []int{1, 2, 3, 4, 5, 8} {
					for _, nk := range []int{0, 1, 2, 3, 4, 5, 7, 9, 33} {
						what := fmt.Sprintf("d=%d nq=%d nk=%d atStart=%v", d, nq, nk, atStart)
						noFault(t, "scoreBlock "+what, func() { scoreBlock(f32(nq*d), f32(nk*d), d, 0.5, f32(nq*nk)) })
						noFault(t, "scoreBlockF16 "+what, func() { scoreBlockF16(f32(nq*d), f16(nk*d), d, 0.5, f32(nq*nk)) })
						// nq query heads of nk probabilities each over nk value rows.
						noFault(t, "weightedSums "+what, func() { weightedSums(f32(nq*nk), f32(nk*d), f32(nq*d), d) })
						noFault(t, "weightedSumsF16 "+what, func() { weightedSumsF16(f32(nq*nk), f16(nk*d), f32(nq*d), d) })
					}
				}
				for _, rows := range []int{0, 1, 2, 5, 9, 40} {
					what := fmt.Sprintf("d=%d rows=%d atStart=%v", d, rows, atStart)
					noFault(t, "weightedSum "+what, func() { weightedSums(f32(rows), f32(rows*d), f32(d), d) })
					noFault(t, "weightedSumF16 "+what, func() { weightedSumsF16(f32(rows), f16(rows*d), f32(d), d) })
					idx := make([]int32, 0, rows)
					for i := 0; i < 2*rows; i += 2 {
						idx = append(idx, int32(i))
					}
					noFault(t, "gatherRows "+what, func() { gatherRows(f32(rows*d), f32(2*rows*d), idx, d) })
					noFault(t, "gatherRowsF16 "+what, func() { gatherRowsF16(f16(rows*d), f16(2*rows*d), idx, d) })
					noFault(t, "gatherRowsBytes "+what, func() { gatherRowsBytes(bytes(rows*d), bytes(2*rows*d), idx, d) })
				}
			}
		}
	})
}
