package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCreatesPrivateFileOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.secret")
	m1, created, err := Load("", path)
	if err != nil || !created {
		t.Fatalf("first Load: %v created=%v", err, created)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, want 0600", st.Mode().Perm())
	}
	m2, created, err := Load("", path)
	if err != nil || created {
		t.Fatalf("second Load: %v created=%v", err, created)
	}
	if !bytes.Equal(m1.Derive("x"), m2.Derive("x")) {
		t.Fatal("reloading the file gave another secret")
	}
	os.Chmod(path, 0o644)
	if _, _, err := Load("", path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable secret file accepted: %v", err)
	}
}

func TestLoadFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none")
	if _, _, err := Load("too short", path); err == nil {
		t.Fatal("a short GATEHOUSE_SECRET was accepted")
	}
	m, created, err := Load(strings.Repeat("k", 32), path)
	if err != nil || created || m == nil {
		t.Fatalf("env secret: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a secret file was written although the env secret was given")
	}
}

func TestDeriveAndSeal(t *testing.T) {
	m, _ := New(bytes.Repeat([]byte{1}, 32))
	other, _ := New(bytes.Repeat([]byte{2}, 32))
	if bytes.Equal(m.Derive("a"), m.Derive("b")) {
		t.Fatal("two purposes derived the same key")
	}
	s := m.NewSealer("keys")
	sealed := s.Seal([]byte("private key"), []byte("kid-1"))
	if bytes.Contains(sealed, []byte("private key")) {
		t.Fatal("plaintext visible in sealed data")
	}
	if got, err := s.Open(sealed, []byte("kid-1")); err != nil || string(got) != "private key" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, []byte("kid-2")); !errors.Is(err, ErrOpen) {
		t.Fatal("opened under another key id: a sealed key could be swapped onto another kid")
	}
	if _, err := other.NewSealer("keys").Open(sealed, []byte("kid-1")); !errors.Is(err, ErrOpen) {
		t.Fatal("opened with another master secret")
	}
	if _, err := m.NewSealer("other purpose").Open(sealed, []byte("kid-1")); !errors.Is(err, ErrOpen) {
		t.Fatal("opened with a sealer of another purpose")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed, []byte("kid-1")); !errors.Is(err, ErrOpen) {
		t.Fatal("tampered data opened")
	}
	if _, err := s.Open([]byte{1, 2}, nil); !errors.Is(err, ErrOpen) {
		t.Fatal("short data opened")
	}
}
