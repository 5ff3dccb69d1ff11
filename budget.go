package lava

import (
	"math"
	"slices"
)

// scored is one prefix token of a layer in the joint ranking: its score and
// its flat index kv·m + i.
type scored struct {
	score float32
	idx   int32
}

// byRank orders scored entries best first: higher score, then lower flat
// index, so rankings are deterministic (spec section 4).
func byRank(a, b scored) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return int(a.idx) - int(b.idx)
}

// rankAll returns every entry of the flat scores s, best first.
func rankAll(s []float32) []scored {
	r := make([]scored, len(s))
	for i, v := range s {
		r[i] = scored{v, int32(i)}
	}
	slices.SortFunc(r, byRank)
	return r
}

// layerBudgets splits total prefix entries per head among layers in
// proportion to their entropies e (spec section 5): b_l = ⌊e_l/Σe · total⌋.
// A layer whose budget reaches its prefix length m_l is kept whole; with
// redistribute, what it cannot use goes to the others, again in proportion
// to their entropies, until no budget exceeds its layer.
func layerBudgets(e []float64, m []int, total int, redistribute bool) []int {
	b := make([]int, len(e))
	whole := make([]bool, len(e))
	for {
		remaining, sum := total, 0.0
		for l := range e {
			if whole[l] {
				remaining -= m[l]
			} else {
				sum += e[l]
			}
		}
		grew := false
		for l := range e {
			if whole[l] {
				continue
			}
			if sum > 0 {
				b[l] = int(math.Floor(e[l] / sum * float64(max(remaining, 0))))
			} else { // every score is zero: split evenly
				b[l] = max(remaining, 0) / (len(e) - countTrue(whole))
			}
			if redistribute && b[l] >= m[l] {
				whole[l], grew = true, true
			}
		}
		if !grew {
			break
		}
	}
	for l := range b {
		if whole[l] {
			b[l] = m[l]
		}
	}
	return b
}

func countTrue(x []bool) int {
	n := 0
	for _, v := range x {
		if v {
			n++
		}
	}
	return n
}

// headCaps returns how many prefix tokens each KV head keeps, given the
// number c[kv] it won in the layer's joint top-k, the layer's per-head budget
// b and its prefix length m (spec section 4).
func (cfg *Config) headCaps(c []int, b, m int) []int {
	caps := make([]int, len(c))
	var floor float64
	switch cfg.Floor {
	case FloorAdaKV:
		floor = math.Floor(cfg.Alpha * float64(b))
	case FloorReference:
		floor = math.Floor(cfg.Alpha * float64(cfg.Budget))
	}
	for kv, n := range c {
		cp := n
		if cfg.Floor != FloorNone {
			cp = int(math.RoundToEven((1-cfg.Alpha)*float64(n) + floor))
		}
		caps[kv] = min(cp, m)
	}
	return caps
}
