package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecretFile bounds a token file: tokens are short, and a wrong path (a
// log, a device) must not be read whole.
const maxSecretFile = 64 << 10

// Secret is a token given either inline (--x, visible in the process list)
// or as a file (--x-file, which wins): the file's content without
// surrounding white space.
func Secret(value, file, fileFlag string) (string, error) {
	if file == "" {
		return value, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", fileFlag, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("--%s: %w", fileFlag, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("--%s: %s is over %d KiB; is it the token file?", fileFlag, file, maxSecretFile>>10)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("--" + fileFlag + ": " + file + " is empty")
	}
	return s, nil
}
