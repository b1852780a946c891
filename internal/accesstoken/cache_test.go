package accesstoken

import (
	"strconv"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := NewCache(8)
	cl := Claims{Subject: "u", ExpiresAt: NumericDate{now.Add(time.Minute)}}
	c.Put("tok", cl)
	if got, ok := c.Get("tok", now); !ok || got.Subject != "u" {
		t.Fatal("a verified token is not remembered")
	}
	for name, tok := range map[string]string{"one byte more": "tok.", "one byte changed": "tak", "empty": ""} {
		if _, ok := c.Get(tok, now); ok {
			t.Errorf("%s: a hit for a token never verified", name)
		}
	}
	if _, ok := c.Get("tok", now.Add(time.Minute)); ok {
		t.Fatal("an expired token is answered from the cache")
	}
	// A flood of distinct tokens: memory stays bounded.
	for i := range 100 {
		c.Put(strconv.Itoa(i), cl)
		if c.Len() > 8 {
			t.Fatalf("%d entries for a bound of 8", c.Len())
		}
	}
	c.Clear()
	if c.Len() != 0 {
		t.Fatal("Clear kept entries")
	}
	var none *Cache
	none.Put("tok", cl)
	if _, ok := none.Get("tok", now); ok {
		t.Fatal("a nil cache remembered")
	}
}

func TestCacheHitAllocatesNothing(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := NewCache(0)
	tok := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln"
	c.Put(tok, Claims{ExpiresAt: NumericDate{now.Add(time.Minute)}})
	if n := testing.AllocsPerRun(100, func() { c.Get(tok, now) }); n != 0 {
		t.Fatalf("a cache hit allocates %v times", n)
	}
}
