package testsupport

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/extauthz/extauthz/capability"
)

func TestLockedBuffer(t *testing.T) {
	var b LockedBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 8 {
		t.Errorf("%d lines; want 8:\n%s", n, b.String())
	}
}

func TestSubject(t *testing.T) {
	s := Subject("ctr-9", capability.Targets{BackendBaseURL: "https://a.example"})
	if s.OutboundContainerID != "ctr-9" || s.UserToken != UserToken || s.ProviderToken != ProviderToken || s.Targets.BackendBaseURL != "https://a.example" {
		t.Errorf("Subject = %#v", s)
	}
	if strings.Contains(fmt.Sprint(s), UserToken) {
		t.Error("a subject's rendering shows the planted token")
	}
}
