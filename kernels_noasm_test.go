//go:build !(amd64 || arm64) || !gc || purego

package lava

// Without assembly there are no calls to bound; the tests size their long
// cases as the assembly builds do (kernels.go).

const asmWork = 1 << 16

func scoreKeys(d, size int) int     { return max(4, 4096/(size*d)&^3) }
func wsumsRows(d, rowBytes int) int { return max(1, 6144/rowBytes) }
func gatherStep(d int) int          { return max(1, asmWork/d) }
