// Package dashpreview draws a Grafana-like preview of dashboard panels as
// SVG from real time series, so docs/operations.md can show what the shipped
// dashboard looks like without a Grafana. It is used by the end-to-end test
// that runs the dashboard's queries against a real Prometheus.
package dashpreview

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Series is one line of a panel: (unix seconds, value) points in time order.
type Series struct {
	Label  string
	Points [][2]float64
}

// Panel is one chart.
type Panel struct {
	Title  string
	Unit   string // Grafana unit: reqps, percentunit, s, bytes, short, none
	Series []Series
}

const (
	cols         = 2
	panelW       = 560
	panelH       = 230
	gap          = 12
	plotL, plotR = 62, 14
	plotT, plotB = 34, 52
)

var palette = []string{"#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#ca95e5"}

// SVG writes the panels in a two-column grid under a title.
func SVG(w io.Writer, title string, panels []Panel) error {
	rows := (len(panels) + cols - 1) / cols
	width := cols*panelW + (cols+1)*gap
	height := 40 + rows*(panelH+gap) + gap
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#111217"/><text x="%d" y="27" fill="#d8d9da" font-size="17">%s</text>`+"\n", gap, html.EscapeString(title))
	for i, p := range panels {
		x := gap + (i%cols)*(panelW+gap)
		y := 40 + (i/cols)*(panelH+gap)
		panel(&b, x, y, p)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func panel(b *strings.Builder, x, y int, p Panel) {
	fmt.Fprintf(b, `<g transform="translate(%d,%d)"><rect width="%d" height="%d" rx="3" fill="#181b1f" stroke="#2c3235"/>`, x, y, panelW, panelH)
	fmt.Fprintf(b, `<text x="10" y="20" fill="#d8d9da" font-size="13">%s</text>`, html.EscapeString(p.Title))
	t0, t1, v1 := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range p.Series {
		for _, pt := range s.Points {
			t0, t1 = math.Min(t0, pt[0]), math.Max(t1, pt[0])
			if !math.IsNaN(pt[1]) && !math.IsInf(pt[1], 0) {
				v1 = math.Max(v1, pt[1])
			}
		}
	}
	if v1 == 0 {
		v1 = 1
	}
	v1 = niceCeil(v1)
	pw, ph := float64(panelW-plotL-plotR), float64(panelH-plotT-plotB)
	for k := 0; k <= 4; k++ {
		gy := float64(plotT) + ph*float64(4-k)/4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#2c3235"/>`, plotL, gy, panelW-plotR, gy)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" fill="#8e8e8e" font-size="10" text-anchor="end">%s</text>`, plotL-6, gy+3, format(v1*float64(k)/4, p.Unit))
	}
	if t1 > t0 {
		for k := 0; k <= 3; k++ {
			gx := float64(plotL) + pw*float64(k)/3
			fmt.Fprintf(b, `<text x="%.1f" y="%d" fill="#8e8e8e" font-size="10" text-anchor="middle">%+.0fs</text>`, gx, panelH-plotB+14, (t1-t0)*float64(k)/3-(t1-t0))
		}
	}
	for i, s := range p.Series {
		color := palette[i%len(palette)]
		var path strings.Builder
		for j, pt := range s.Points {
			if math.IsNaN(pt[1]) || math.IsInf(pt[1], 0) {
				continue
			}
			px := float64(plotL)
			if t1 > t0 {
				px += pw * (pt[0] - t0) / (t1 - t0)
			}
			py := float64(plotT) + ph*(1-pt[1]/v1)
			cmd := "L"
			if j == 0 || path.Len() == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f,%.1f ", cmd, px, py)
		}
		if path.Len() > 0 {
			fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.6"/>`, strings.TrimSpace(path.String()), color)
		}
		lx, ly := 10+(i%3)*180, panelH-plotB+30+(i/3)*13
		if ly < panelH-4 {
			label := s.Label
			if len(label) > 26 {
				label = label[:25] + "…"
			}
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="3" fill="%s"/><text x="%d" y="%d" fill="#c7d0d9" font-size="10">%s</text>`,
				lx, ly-4, color, lx+14, ly, html.EscapeString(label))
		}
	}
	if len(p.Series) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#8e8e8e" font-size="12" text-anchor="middle">No data</text>`, panelW/2, panelH/2)
	}
	b.WriteString("</g>\n")
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

// format renders an axis value in the panel's unit.
func format(v float64, unit string) string {
	switch unit {
	case "percentunit":
		return fmt.Sprintf("%.0f%%", v*100)
	case "s":
		switch {
		case v == 0:
			return "0"
		case v < 1e-3:
			return fmt.Sprintf("%.0fµs", v*1e6)
		case v < 1:
			return fmt.Sprintf("%.1fms", v*1e3)
		}
		return fmt.Sprintf("%.1fs", v)
	case "bytes":
		switch {
		case v >= 1<<30:
			return fmt.Sprintf("%.1f GiB", v/(1<<30))
		case v >= 1<<20:
			return fmt.Sprintf("%.0f MiB", v/(1<<20))
		case v >= 1<<10:
			return fmt.Sprintf("%.0f KiB", v/(1<<10))
		}
		return fmt.Sprintf("%.0f B", v)
	case "reqps":
		return trim(v) + "/s"
	}
	return trim(v)
}

func trim(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
