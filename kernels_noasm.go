//go:build !(amd64 || arm64) || !gc || purego

package lava

// Dispatch to the reference kernels where no assembly exists.

// useAsm is false here: there is no assembly to use.
var useAsm = false

func scoreBlock(q, keys []float32, d int, scale float32, out []float32) {
	scoreBlockGeneric(q, keys, d, scale, out, len(keys)/d)
}

func scoreBlockLD(q, keys []float32, d int, scale float32, out []float32, ld int) {
	scoreBlockGeneric(q, keys, d, scale, out, ld)
}

func scoreBlockF16(q []float32, keys []uint16, d int, scale float32, out []float32) {
	scoreBlockF16Generic(q, keys, d, scale, out)
}

func maxOf(x []float32) float32                  { return maxGeneric(x) }
func expSub(x []float32, m float32) float32      { return expSubGeneric(x, m) }
func axpy(a float32, x, y []float32)             { axpyGeneric(a, x, y) }
func weightedSums(p, vals, out []float32, d int) { weightedSumsGeneric(p, vals, out, d) }
func weightedSumsF16(p []float32, vals []uint16, out []float32, d int) {
	weightedSumsF16Generic(p, vals, out, d)
}
func l1Norm(x []float32) float32                           { return l1NormGeneric(x) }
func l1NormF16(x []uint16) float32                         { return l1NormF16Generic(x) }
func gatherRows(dst, src []float32, idx []int32, d int)    { gatherRowsGeneric(dst, src, idx, d) }
func gatherRowsF16(dst, src []uint16, idx []int32, d int)  { gatherRowsGeneric(dst, src, idx, d) }
func gatherRowsBytes(dst, src []byte, idx []int32, rb int) { gatherRowsGeneric(dst, src, idx, rb) }
func dequant(dst []float32, src []byte, e Element, d int)  { dequantGeneric(dst, src, e, d) }
func weightedSumsAdd(p []float32, pn int, vals, out []float32, d int) {
	weightedSumsAddGeneric(p, pn, vals, out, d)
}
func widenF16(dst []float32, src []uint16)  { widenF16Generic(dst, src) }
func narrowF16(dst []uint16, src []float32) { narrowF16Generic(dst, src) }
func copyFinite(dst, src []float32) int     { return copyFiniteGeneric(dst, src) }
func finiteF16Row(row []uint16) bool        { return finiteF16RowGeneric(row) }

func scoreQuantFused(q []float32, keys []byte, e Element, d int, scale float32, out []float32) bool {
	return false
}

func weightedSumsQuantFused(p []float32, vals []byte, e Element, out []float32, d int) bool {
	return false
}
