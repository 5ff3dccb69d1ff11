// Package modelfile finds and loads the model the examples share,
// stories260K.gguf, which lives outside the repository in shared/models/,
// for the programs and their tests.
//
// It imports nothing of the examples module, so that the tests of every
// package, llama's and tokenizer's included, can use it; Load takes the
// loader (llama.Load) as an argument for that reason.
package modelfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// env is the environment variable that names the model file explicitly.
const env = "LAVA_MODEL"

// rel is where the model lives relative to some parent directory of the
// working directory (the repository's parent holds shared/).
const rel = "shared/models/stories260K.gguf"

// FlagUsage is the usage text of a program's -model flag.
const FlagUsage = "model `file` (GGUF, Llama architecture); default $" + env + ", else " + rel + " in the nearest parent of the working directory"

// TrainedContext is the context stories260K was trained on; its GGUF says
// 2048, the converter's default.
const TrainedContext = 512

// Find returns the model path: $LAVA_MODEL if set, else shared/models/
// stories260K.gguf under the nearest parent of the working directory that
// has it. It does not check that $LAVA_MODEL exists; opening it will.
func Find() (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in the working directory or any parent, and $%s is not set", rel, env)
		}
		dir = parent
	}
}

// Download says where to get the model: its public source, size and
// checksum (the README gives the one command that fetches and checks it).
const Download = "download it from https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf: " +
	"1,185,376 bytes, sha256 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"

// Load loads, with load (llama.Load), the model a -model flag names, or
// the one Find finds when the flag is empty, and returns it with its path.
// Its errors are one line that says what to pass.
func Load[M, T any](flag string, load func(path string) (M, T, error)) (M, T, string, error) {
	var m M
	var t T
	path := flag
	if path == "" {
		p, err := Find()
		if err != nil {
			return m, t, "", fmt.Errorf("no model: %v; pass -model path/to/stories260K.gguf (%s)", err, Download)
		}
		path = p
	}
	m, t, err := load(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, t, "", fmt.Errorf("model file %s does not exist; pass -model path/to/stories260K.gguf or set $%s (%s)", path, env, Download)
	}
	if err != nil {
		return m, t, "", fmt.Errorf("cannot load model: %v; pass -model with a Llama GGUF file such as stories260K.gguf", err)
	}
	return m, t, path, nil
}

// PathForTest returns the model's path for a test. When the model cannot
// be found the test is skipped, or fails when $CI is "true": CI must never
// silently skip the tests that check the real model.
func PathForTest(tb testing.TB) string {
	tb.Helper()
	p, err := Find()
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("model not found and CI=true: %v", err)
	}
	tb.Skipf("skipping: model not found (%v); set $%s to run", err, env)
	return ""
}
