package lava

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalid is wrapped by every error lava returns for bad caller input
// (configuration, slice lengths, indices, non-finite data), so callers can
// tell input errors apart with errors.Is.
var ErrInvalid = errors.New("lava: invalid input")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Config describes the model whose cache lava holds and how it compresses.
// Zero values of the optional fields select the defaults given in their
// comments.
type Config struct {
	Layers  int // transformer layers, 1 ≤ L ≤ 65536
	Heads   int // query heads per layer, H ≥ 1, a multiple of KVHeads
	KVHeads int // key/value heads per layer, Hkv ≥ 1, L·Hkv ≤ 2²⁰
	HeadDim int // dimension of one head, d ≥ 1, H·d ≤ 2²⁰

	// Budget is B, the average number of entries kept per KV head per layer,
	// including the Window tokens (the paper's unit). It must exceed Window.
	Budget int
	// Window is w, the number of most recent tokens whose queries score the
	// rest and which are always kept. Default [DefaultWindow]. A layer
	// keeps the queries of its last 2·Window tokens (so that a Truncate
	// keeps the window's), 2·Window·H·d values, at most 2²⁶.
	Window int
	// Redistribute gives the budget a layer cannot use (its budget reaches
	// its prefix length) to the other layers in proportion to their
	// entropies, for policies with EntropyLayers. The paper's code loses
	// it; off by default.
	Redistribute bool
	// KeyElement and ValueElement are the storage types of keys and of
	// values, which may differ (engines often keep keys at 8 bits and
	// values at 4). Default Float32. Q4_0 needs an even HeadDim, and the
	// quantised types a HeadDim of at most 4096.
	KeyElement, ValueElement Element
	// AttentionScale multiplies query·key products before the softmax, in
	// Attend and in scoring. Default 1/√HeadDim; some model families use
	// another. It must be finite and positive.
	AttentionScale float64
	// Policy selects how tokens are ranked and budgets split, with its
	// pooling and head floor. The zero Policy is LAVa.
	Policy Policy
	// DecodeReserve is the number of decode tokens per head for which
	// storage is set aside when Compress shrinks the cache, so that decode
	// Appends do not reallocate; at most 2²⁰. Default 0: decode storage
	// grows on demand.
	DecodeReserve int
	// DecodeSlack is S: once a decoding step has been appended and attended
	// in every layer and the cache holds more than Budget + S entries per
	// KV head on average, Attend compresses it back to Budget, so the cache
	// stays within Budget + S for a generation of any length (one scoring
	// per about S tokens). At most 2²⁰. Default 0: decode tokens are kept
	// until the host calls Compress.
	DecodeSlack int
	// Workers is how many goroutines Compress and Attend may use, at most
	// 1024. Default 0: runtime.GOMAXPROCS(0), read at each call, as a Go
	// program expects its core count to be honoured; an engine that runs
	// many sequences in parallel sets 1, which starts no goroutine. Work
	// is split by layer and KV head, so every Workers value gives
	// bit-identical results. Attend, decode steps included, splits a
	// layer's KV heads once it has 2¹⁸ query·key products (tokens × query
	// heads per KV head × entries of all KV heads × HeadDim: one token at
	// HeadDim 128 with 4 query heads per KV head over 512 entries), on
	// goroutines the cache starts at its first such call and keeps until
	// it is unreachable, so a step allocates nothing; smaller layers and
	// decode eviction (TOVA, CAKE) stay on the calling goroutine. Each of
	// those goroutines keeps scratch for the scores of one KV head's group,
	// as the cache does for the calling one (tokens × query heads per KV
	// head × the largest head's capacity in entries, float32), which
	// AllocatedBytes counts.
	Workers int
}

// Size limits: beyond them the products of the sizes overflow or could not
// be allocated.
const (
	maxLayers        = 1 << 16
	maxHeadsTotal    = 1 << 20 // Layers·KVHeads
	maxQueryRow      = 1 << 20 // Heads·HeadDim
	maxQueryRing     = 1 << 26 // Window·Heads·HeadDim
	maxKernel        = 1<<16 - 1
	maxDecodeReserve = 1 << 20
	maxWorkers       = 1 << 10
)

// queryRing is how many of the most recent tokens' queries a layer keeps:
// twice the window, so that rolling back up to Window tokens (Truncate)
// leaves the window's queries in place.
func (c *Config) queryRing() int { return 2 * c.Window }

// withDefaults returns c with its zero optional fields set to defaults and
// checks every field, naming the first bad one.
func (c Config) withDefaults() (Config, error) {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.AttentionScale == 0 && c.HeadDim > 0 {
		c.AttentionScale = 1 / math.Sqrt(float64(c.HeadDim))
	}
	c.Policy = c.Policy.withDefaults()
	switch {
	case c.Layers < 1 || c.Layers > maxLayers:
		return c, invalidf("Config.Layers = %d, want 1 ≤ Layers ≤ %d", c.Layers, maxLayers)
	case c.KVHeads < 1 || c.KVHeads > maxHeadsTotal/c.Layers:
		return c, invalidf("Config.KVHeads = %d, want 1 ≤ KVHeads and Layers·KVHeads ≤ %d", c.KVHeads, maxHeadsTotal)
	case c.Heads < 1 || c.Heads > maxQueryRow:
		return c, invalidf("Config.Heads = %d, want 1 ≤ Heads ≤ %d", c.Heads, maxQueryRow)
	case c.Heads%c.KVHeads != 0:
		return c, invalidf("Config.Heads = %d is not a multiple of Config.KVHeads = %d", c.Heads, c.KVHeads)
	case c.HeadDim < 1 || c.HeadDim > maxQueryRow/c.Heads:
		return c, invalidf("Config.HeadDim = %d, want 1 ≤ HeadDim and Heads·HeadDim ≤ %d", c.HeadDim, maxQueryRow)
	case c.Window < 1 || c.Window > maxQueryRing/(2*c.Heads*c.HeadDim):
		return c, invalidf("Config.Window = %d, want 1 ≤ Window and 2·Window·Heads·HeadDim ≤ %d", c.Window, maxQueryRing)
	case c.Budget <= c.Policy.windowOf(&c):
		return c, invalidf("Config.Budget = %d, want > the window %d (the budget includes the window)", c.Budget, c.Policy.windowOf(&c))
	case c.Budget > math.MaxInt32/c.KVHeads:
		return c, invalidf("Config.Budget = %d, want ≤ %d", c.Budget, math.MaxInt32/c.KVHeads)
	case !(c.AttentionScale > 0 && c.AttentionScale <= math.MaxFloat32):
		return c, invalidf("Config.AttentionScale = %v, want a finite value > 0 (0 for 1/√HeadDim)", c.AttentionScale)
	case !c.KeyElement.valid():
		return c, invalidf("Config.KeyElement = %d, want Float32, Float16, Q8_0 or Q4_0", int(c.KeyElement))
	case !c.ValueElement.valid():
		return c, invalidf("Config.ValueElement = %d, want Float32, Float16, Q8_0 or Q4_0", int(c.ValueElement))
	case (c.KeyElement.quantised() || c.ValueElement.quantised()) && c.HeadDim > quantTile:
		return c, invalidf("Config.HeadDim = %d, want ≤ %d with quantised storage (KeyElement %v, ValueElement %v)", c.HeadDim, quantTile, c.KeyElement, c.ValueElement)
	case (c.KeyElement == Q4_0 || c.ValueElement == Q4_0) && c.HeadDim%2 != 0:
		return c, invalidf("Config.HeadDim = %d, want an even HeadDim with Q4_0 storage (two elements per byte)", c.HeadDim)
	case c.DecodeReserve < 0 || c.DecodeReserve > maxDecodeReserve:
		return c, invalidf("Config.DecodeReserve = %d, want 0 ≤ DecodeReserve ≤ %d", c.DecodeReserve, maxDecodeReserve)
	case c.DecodeSlack < 0 || c.DecodeSlack > maxDecodeReserve:
		return c, invalidf("Config.DecodeSlack = %d, want 0 ≤ DecodeSlack ≤ %d", c.DecodeSlack, maxDecodeReserve)
	case c.Workers < 0 || c.Workers > maxWorkers:
		return c, invalidf("Config.Workers = %d, want 0 ≤ Workers ≤ %d (0 for GOMAXPROCS)", c.Workers, maxWorkers)
	}
	return c, c.Policy.validate(&c)
}
