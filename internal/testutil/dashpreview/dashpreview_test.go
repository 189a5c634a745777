package dashpreview

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{0.25, "percentunit", "25%"},
		{0.000250, "s", "250µs"},
		{0.0125, "s", "12.5ms"},
		{2, "s", "2.0s"},
		{25 << 20, "bytes", "25 MiB"},
		{1500, "reqps", "1.5k/s"},
		{12, "short", "12"},
		{0.75, "none", "0.75"},
	} {
		if got := format(c.v, c.unit); got != c.want {
			t.Errorf("format(%v, %s) = %q; want %q", c.v, c.unit, got, c.want)
		}
	}
	for v, want := range map[float64]float64{0.3: 0.5, 1: 1, 1.2: 2, 37: 50, 510: 1000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v; want %v", v, got, want)
		}
	}
}

// TestSVG: the drawing is well-formed, escapes titles and labels, and
// survives empty panels and NaN points.
func TestSVG(t *testing.T) {
	var b strings.Builder
	err := SVG(&b, "a <title>", []Panel{
		{Title: "x & y", Unit: "reqps", Series: []Series{{Label: "<l>", Points: [][2]float64{{1, 2}, {2, math.NaN()}, {3, 4}}}}},
		{Title: "empty"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal([]byte(b.String()), new(struct{})); err != nil {
		t.Fatalf("not well-formed: %v", err)
	}
	for _, want := range []string{"a &lt;title&gt;", "x &amp; y", "&lt;l&gt;", "No data", "<path d=\"M"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
