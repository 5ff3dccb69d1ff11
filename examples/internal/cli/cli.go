// Package cli holds what the example programs share on the command line.
package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/lavakv/lava/examples/internal/modelpath"
	"github.com/lavakv/lava/examples/llama"
	"github.com/lavakv/lava/examples/tokenizer"
)

// LoadModel loads the model a -model flag names, or the one Find finds when the
// flag is empty, and returns it with its path. Its errors are one line that
// says what to pass.
func LoadModel(flag string) (*llama.Model, *tokenizer.Tokenizer, string, error) {
	path := flag
	if path == "" {
		p, err := modelpath.Find()
		if err != nil {
			return nil, nil, "", fmt.Errorf("no model: %v; pass -model path/to/stories260K.gguf", err)
		}
		path = p
	}
	m, tok, err := llama.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, "", fmt.Errorf("model file %s does not exist; pass -model path/to/stories260K.gguf or set $%s", path, modelpath.Env)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("cannot load model: %v; pass -model with a Llama GGUF file such as stories260K.gguf", err)
	}
	return m, tok, path, nil
}
