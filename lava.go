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

// Pooling selects how per-token attention is smoothed along the token axis
// before tokens are ranked (spec section 2).
type Pooling int

const (
	// PoolMax takes the maximum over the positions of the kernel that exist
	// (edge windows are shorter). It is the paper's default.
	PoolMax Pooling = iota
	// PoolAvg sums over the kernel with zero padding and divides by the
	// kernel size, also at the edges (PyTorch count_include_pad=True).
	PoolAvg
)

func (p Pooling) String() string {
	switch p {
	case PoolMax:
		return "max"
	case PoolAvg:
		return "avg"
	}
	return fmt.Sprintf("Pooling(%d)", int(p))
}

// FloorMode selects how a head's share of the layer budget is derived from
// the joint top-k (spec section 4).
type FloorMode int

const (
	// FloorNone is the paper's mode: a head keeps exactly the prefix tokens
	// it wins in the joint top-k of its layer (α = 0).
	FloorNone FloorMode = iota
	// FloorAdaKV guarantees every head a floor: cap = round((1−α)·c + ⌊α·b_l⌋),
	// where b_l is the layer's per-head budget without the window.
	FloorAdaKV
	// FloorReference reproduces the official LAVa code, whose floor is
	// ⌊α·B⌋ from the configured budget including the window, fixed for all
	// layers. It keeps 0.5–4.5 % more entries than the budget for typical
	// budgets; use it only to reproduce published numbers.
	FloorReference
)

func (f FloorMode) String() string {
	switch f {
	case FloorNone:
		return "none"
	case FloorAdaKV:
		return "adakv"
	case FloorReference:
		return "reference"
	}
	return fmt.Sprintf("FloorMode(%d)", int(f))
}

// Element is the storage type of cached keys and values.
type Element int

const (
	// Float32 stores keys and values as float32 (the default).
	Float32 Element = iota
	// Float16 stores keys and values as IEEE 754 binary16, halving the
	// cache's memory. Inputs are rounded to nearest even; kernels read the
	// half-precision data directly.
	Float16
)

func (e Element) String() string {
	switch e {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	}
	return fmt.Sprintf("Element(%d)", int(e))
}

func (e Element) size() int {
	if e == Float16 {
		return 2
	}
	return 4
}

// Config describes the model whose cache lava holds and how it compresses.
// Zero values of the optional fields select the defaults given in their
// comments.
type Config struct {
	Layers  int // transformer layers, L ≥ 1
	Heads   int // query heads per layer, H ≥ 1, a multiple of KVHeads
	KVHeads int // key/value heads per layer, Hkv ≥ 1
	HeadDim int // dimension of one head, d ≥ 1

	// Budget is B, the average number of entries kept per KV head per layer,
	// including the Window tokens (the paper's unit). It must exceed Window.
	Budget int
	// Window is w, the number of most recent prompt tokens whose queries
	// score the rest and which are always kept. Default 32.
	Window int
	// Pooling and Kernel smooth scores along the token axis. Defaults: max
	// pooling, kernel 7. The kernel must be odd; 1 disables pooling.
	Pooling Pooling
	Kernel  int
	// Floor and Alpha select the per-head floor (see FloorMode). Alpha
	// defaults to 0.2 when Floor is not FloorNone and must be in [0, 1);
	// with FloorNone it must be 0.
	Floor FloorMode
	Alpha float64
	// Redistribute gives the budget a layer cannot use (its budget reaches
	// its prefix length) to the other layers in proportion to their
	// entropies. The paper's code loses it; off by default.
	Redistribute bool
	// Element is the storage type of keys and values. Default Float32.
	Element Element
	// Policy selects how tokens are ranked and budgets split. The zero
	// Policy is LAVa.
	Policy Policy
	// DecodeReserve is the number of decode tokens per head for which
	// storage is set aside when Compress shrinks the cache, so that decode
	// Appends do not reallocate. Default 0: decode storage grows on demand.
	DecodeReserve int
}

const (
	defaultWindow = 32
	defaultKernel = 7
	defaultAlpha  = 0.2
)

// withDefaults returns c with its zero optional fields set to defaults and
// checks every field, naming the first bad one.
func (c Config) withDefaults() (Config, error) {
	if c.Window == 0 {
		c.Window = defaultWindow
	}
	if c.Kernel == 0 {
		c.Kernel = defaultKernel
	}
	if c.Alpha == 0 && c.Floor != FloorNone {
		c.Alpha = defaultAlpha
	}
	switch {
	case c.Layers < 1:
		return c, invalidf("Config.Layers = %d, want ≥ 1", c.Layers)
	case c.Heads < 1:
		return c, invalidf("Config.Heads = %d, want ≥ 1", c.Heads)
	case c.KVHeads < 1:
		return c, invalidf("Config.KVHeads = %d, want ≥ 1", c.KVHeads)
	case c.Heads%c.KVHeads != 0:
		return c, invalidf("Config.Heads = %d is not a multiple of Config.KVHeads = %d", c.Heads, c.KVHeads)
	case c.HeadDim < 1:
		return c, invalidf("Config.HeadDim = %d, want ≥ 1", c.HeadDim)
	case c.Window < 1:
		return c, invalidf("Config.Window = %d, want ≥ 1", c.Window)
	case c.Budget <= c.Policy.window(&c):
		return c, invalidf("Config.Budget = %d, want > Config.Window = %d (the budget includes the window)", c.Budget, c.Policy.window(&c))
	case c.Budget > math.MaxInt32/c.KVHeads:
		return c, invalidf("Config.Budget = %d is too large", c.Budget)
	case c.Pooling != PoolMax && c.Pooling != PoolAvg:
		return c, invalidf("Config.Pooling = %d, want PoolMax or PoolAvg", int(c.Pooling))
	case c.Kernel < 1 || c.Kernel%2 == 0:
		return c, invalidf("Config.Kernel = %d, want an odd number ≥ 1", c.Kernel)
	case c.Floor != FloorNone && c.Floor != FloorAdaKV && c.Floor != FloorReference:
		return c, invalidf("Config.Floor = %d, want FloorNone, FloorAdaKV or FloorReference", int(c.Floor))
	case c.Floor == FloorNone && c.Alpha != 0:
		return c, invalidf("Config.Alpha = %v is set but Config.Floor is FloorNone; set a Floor mode or leave Alpha 0", c.Alpha)
	case !(c.Alpha >= 0 && c.Alpha < 1):
		return c, invalidf("Config.Alpha = %v, want a value in [0, 1)", c.Alpha)
	case c.Element != Float32 && c.Element != Float16:
		return c, invalidf("Config.Element = %d, want Float32 or Float16", int(c.Element))
	case c.DecodeReserve < 0:
		return c, invalidf("Config.DecodeReserve = %d, want ≥ 0", c.DecodeReserve)
	}
	return c, c.Policy.check(&c)
}
