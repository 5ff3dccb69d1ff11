//go:build gc && !purego

package lava

import "golang.org/x/sys/cpu"

// useAsm selects the AVX2 kernels of kernels_amd64.s; tests turn it off to
// run the generic ones. HasFMA and HasF16C are raw CPUID bits and only
// HasAVX2 includes the OS check for saved YMM state, so all three are
// required.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
