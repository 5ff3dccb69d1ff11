//go:build gc && !purego

package lava

import "golang.org/x/sys/cpu"

// Dispatch for amd64: AVX2, FMA and F16C assembly in kernels_amd64.s.
//
// The wrappers here check what the assembly trusts (lengths, bounds) and cut
// the work into bounded calls: assembly is not preemptible, so no single call
// may run for long.

// useAsm selects the assembly kernels; tests turn it off to run the generic
// ones. HasFMA and HasF16C are raw CPUID bits and only HasAVX2 includes the
// OS check for saved YMM state, so all three are required.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

//go:noescape
func score3x4AVX2(q0, q1, q2, keys, out *float32, d, nk, o1, o2 int, scale float32)

//go:noescape
func score3x4F16AVX2(q0, q1, q2 *float32, keys *uint16, out *float32, d, nk, o1, o2 int, scale float32)

// scoreKeys is how many keys one score call visits: about 16 KiB of keys,
// so that the block stays in L1 while every query group passes over it.
func scoreKeys(rowBytes int) int {
	return max(4, 16384/rowBytes&^3)
}

func scoreBlock(q, keys []float32, d int, scale float32, out []float32) {
	if !useAsm || d <= 0 {
		scoreBlockGeneric(q, keys, d, scale, out)
		return
	}
	nq, nk := len(q)/d, len(keys)/d
	if nq == 0 || nk == 0 {
		return
	}
	_ = out[nq*nk-1]
	kc := scoreKeys(4 * d)
	for j := 0; j < nk; j += kc {
		n := min(kc, nk-j)
		for i := 0; i < nq; i += 3 {
			// A short last group repeats its last query; the repeated
			// rows are written twice with identical values.
			r1, r2 := min(i+1, nq-1), min(i+2, nq-1)
			score3x4AVX2(&q[i*d], &q[r1*d], &q[r2*d], &keys[j*d], &out[i*nk+j], d, n, (r1-i)*nk, (r2-i)*nk, scale)
		}
	}
}

func scoreBlockF16(q []float32, keys []uint16, d int, scale float32, out []float32) {
	if !useAsm || d < 8 {
		scoreBlockF16Generic(q, keys, d, scale, out)
		return
	}
	nq, nk := len(q)/d, len(keys)/d
	if nq == 0 || nk == 0 {
		return
	}
	_ = out[nq*nk-1]
	kc := scoreKeys(2 * d)
	d8 := d &^ 7
	for j := 0; j < nk; j += kc {
		n := min(kc, nk-j)
		for i := 0; i < nq; i += 3 {
			r1, r2 := min(i+1, nq-1), min(i+2, nq-1)
			score3x4F16AVX2(&q[i*d], &q[r1*d], &q[r2*d], &keys[j*d], &out[i*nk+j], d, n, (r1-i)*nk, (r2-i)*nk, scale)
		}
		if d8 == d {
			continue
		}
		// The last d mod 8 elements of every row, in scalar code.
		for i := range nq {
			qt := q[i*d+d8 : (i+1)*d]
			row := out[i*nk+j : i*nk+j+n]
			for k := range row {
				kt := keys[(j+k)*d+d8 : (j+k+1)*d]
				var s float32
				for t, x := range qt {
					s += x * f16ToF32(kt[t])
				}
				row[k] += scale * s
			}
		}
	}
}

func maxOf(x []float32) float32                                { return maxGeneric(x) }
func expSub(x []float32, m float32) float32                    { return expSubGeneric(x, m) }
func axpy(a float32, x, y []float32)                           { axpyGeneric(a, x, y) }
func weightedSum(p, vals, out []float32)                       { weightedSumGeneric(p, vals, out) }
func weightedSumF16(p []float32, vals []uint16, out []float32) { weightedSumF16Generic(p, vals, out) }
func l1Norm(x []float32) float32                               { return l1NormGeneric(x) }
func l1NormF16(x []uint16) float32                             { return l1NormF16Generic(x) }
func gatherRows(dst, src []float32, idx []int32, d int)        { gatherRowsGeneric(dst, src, idx, d) }
func gatherRowsF16(dst, src []uint16, idx []int32, d int)      { gatherRowsGeneric(dst, src, idx, d) }
func widenF16(dst []float32, src []uint16)                     { widenF16Generic(dst, src) }
func narrowF16(dst []uint16, src []float32)                    { narrowF16Generic(dst, src) }
