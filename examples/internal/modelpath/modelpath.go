// Package modelpath finds the stories260K model shared by the examples and
// their tests, which live outside the repository.
package modelpath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Env is the environment variable that names the model file explicitly.
const Env = "LAVA_MODEL"

// Rel is where the model lives relative to some parent directory of the
// working directory (the repository's parent holds shared/).
const Rel = "shared/models/stories260K.gguf"

// Find returns the model path: $LAVA_MODEL if set, else Rel under the
// nearest parent of the working directory that has it. It does not check
// that $LAVA_MODEL exists; opening it will.
func Find() (string, error) {
	if p := os.Getenv(Env); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, filepath.FromSlash(Rel))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in the working directory or any parent, and $%s is not set", Rel, Env)
		}
		dir = parent
	}
}
