package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

var fast = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	h := Hash("correct horse", fast)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string %q", h)
	}
	if err := Verify("correct horse", h); err != nil {
		t.Fatal(err)
	}
	if err := Verify("correct horsE", h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
	if Hash("correct horse", fast) == h {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestDefaultIsOWASP(t *testing.T) {
	h := Hash("x", Default)
	p, _, _, err := Parse(h)
	if err != nil || p.Memory < 19*1024 || p.Time < 2 || p.Threads != 1 {
		t.Fatalf("default params %+v (%v) below OWASP's m=19MiB,t=2,p=1", p, err)
	}
}

func TestParseRejects(t *testing.T) {
	good := Hash("pw", fast)
	parts := strings.Split(good, "$")
	for name, phc := range map[string]string{
		"empty":          "",
		"argon2i":        strings.Replace(good, "argon2id", "argon2i", 1),
		"bcrypt":         "$2a$10$abcdefghijklmnopqrstuu",
		"version":        strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":    strings.Replace(good, "m=64", "m=4294967295", 1),
		"zero time":      strings.Replace(good, "t=1", "t=0", 1),
		"param order":    strings.Replace(good, "m=64,t=1,p=1", "t=1,m=64,p=1", 1),
		"short salt":     strings.Join(append(parts[:4:4], "AAAA", parts[5]), "$"),
		"bad base64 key": strings.Join(append(parts[:5:5], "!!!"), "$"),
		"extra field":    good + "$x",
	} {
		if _, _, _, err := Parse(phc); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse(%q) = %v, want ErrMalformed", name, phc, err)
		}
	}
}

func TestLimiterBoundsConcurrencyAndQueue(t *testing.T) {
	l := NewLimiter(2, 1) // 2 running + 1 queued
	release := make(chan struct{})
	var running, peak int
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := make(chan struct{}, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Do(context.Background(), func() {
				mu.Lock()
				running++
				peak = max(peak, running)
				mu.Unlock()
				started <- struct{}{}
				<-release
				mu.Lock()
				running--
				mu.Unlock()
			})
		}()
	}
	<-started
	<-started
	// Two hold slots; wait until the third is queued, then a fourth is
	// refused at once.
	for len(l.queue) < 3 {
		time.Sleep(time.Millisecond)
	}
	if err := l.Do(context.Background(), func() { t.Error("ran past a full queue") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("Do with a full queue = %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	close(release)
	wg.Wait()
	if peak > 2 {
		t.Fatalf("%d hashes ran at once, cap is 2", peak)
	}
	if err := l.Do(ctx, func() {}); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Do after release: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Hash("pw", fast)) // made at run time; the fixed seeds are in testdata/fuzz/FuzzParse
	f.Fuzz(func(t *testing.T, phc string) {
		p, salt, key, err := Parse(phc)
		if err != nil {
			return
		}
		if p.Memory > 1<<20 || p.Time > 16 || len(salt) < 8 || len(key) < 16 {
			t.Fatalf("accepted unbounded params %+v", p)
		}
	})
}
