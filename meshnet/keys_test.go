package meshnet

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPublicKeyMatchesRFC7748Vector(t *testing.T) {
	// RFC 7748 §6.1, Alice's key pair.
	priv, _ := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	var k PrivateKey
	copy(k[:], priv)
	require.Equal(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", k.Public().Hex())
}

func TestGeneratedKeysAreClampedAndRoundTrip(t *testing.T) {
	k, err := GeneratePrivateKey()
	require.NoError(t, err)
	require.Zero(t, k[0]&7)
	require.Equal(t, byte(64), k[31]&192)

	parsed, err := ParsePrivateKey(k.Base64())
	require.NoError(t, err)
	require.Equal(t, k, parsed)

	pub := k.Public()
	require.Len(t, pub.String(), 44)
	require.Len(t, pub.Hex(), 64)
	back, err := ParsePublicKey(pub.String())
	require.NoError(t, err)
	require.Equal(t, pub, back)

	// JSON uses the wg base64 form.
	b, err := json.Marshal(map[string]PublicKey{"k": pub})
	require.NoError(t, err)
	require.Contains(t, string(b), pub.String())
	var m map[string]PublicKey
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, pub, m["k"])
}

func TestPrivateKeyIsRedactedWhenPrinted(t *testing.T) {
	k, err := GeneratePrivateKey()
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %s %+v %#v", k, k, k, k)} {
		require.NotContains(t, s, k.Base64())
		require.NotContains(t, s, k.hex())
	}
}

func TestMalformedKeys(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "empty"},
		{"not base64", "not a key!", "not valid base64"},
		{"too short", "AAAA", "decodes to 3 bytes"},
		{"too long", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "decodes to 36 bytes"},
		{"all zero", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "all zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKey(tc.in)
			require.ErrorContains(t, err, tc.want)
			_, err = ParsePrivateKey(tc.in)
			require.ErrorContains(t, err, tc.want)
			var k PublicKey
			require.Error(t, k.UnmarshalText([]byte(tc.in)))
		})
	}
}

func TestPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "wg.key")

	k, err := LoadOrCreatePrivateKey(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	again, err := LoadOrCreatePrivateKey(path)
	require.NoError(t, err)
	require.Equal(t, k, again, "an existing key is loaded, not replaced")

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = LoadPrivateKey(path)
	require.ErrorContains(t, err, "chmod 600")

	garbage := filepath.Join(dir, "garbage.key")
	require.NoError(t, os.WriteFile(garbage, []byte("hello"), 0o600))
	_, err = LoadPrivateKey(garbage)
	require.ErrorContains(t, err, "garbage.key")

	require.Error(t, SavePrivateKey(filepath.Join(dir, "zero.key"), PrivateKey{}))
}
