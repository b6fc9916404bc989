package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart is drawn by hand with image/png and x/image's 7×13 bitmap font,
// not with a plotting library: gonum.org/v1/plot would do it in fewer lines
// but adds about 9 MB (fonts, a PDF and an SVG backend, a LaTeX renderer)
// to the one binary that every Sluice user runs, for a picture that needs
// two panels of lines, axes and a legend. basicfont adds a few kilobytes.

// Chart draws, into a PNG file, inter-token delay against concurrent
// generations (left) and server memory per idle connection against idle
// connections (right), for every transport and server measured.
func (res *Result) Chart(path string) error {
	const w, h = 1400, 560
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)

	left := panel{title: fmt.Sprintf("Inter-token delay vs concurrent generations (%.0f tokens/s each)", res.DemoTPS),
		xlabel: "concurrent generations", ylabel: "ms"}
	for _, r := range res.Capacity {
		var p50, p99 [][2]float64
		for _, p := range r.Points {
			p50 = append(p50, [2]float64{float64(p.Gens), p.ITL.P50})
			p99 = append(p99, [2]float64{float64(p.Gens), p.ITL.P99})
		}
		name := seriesName(r.Server, r.Transport)
		left.series = append(left.series,
			series{name: name + " p99", col: colorOf(r.Server, r.Transport), pts: p99},
			series{name: name + " p50", col: colorOf(r.Server, r.Transport), dashed: true, pts: p50})
		if len(left.refs) == 0 {
			left.refs = append(left.refs, ref{y: r.BoundMS, label: fmt.Sprintf("bound %.0f ms", r.BoundMS)})
		}
	}
	if len(res.Floor) > 0 {
		var pts [][2]float64
		for _, p := range res.Floor {
			pts = append(pts, [2]float64{float64(p.Goroutines), p.Lateness.P99 + 1000/max(res.DemoTPS, 1)})
		}
		left.series = append(left.series, series{name: "machine floor p99: timers alone, no I/O", col: color.RGBA{60, 160, 60, 255}, dashed: true, pts: pts})
	}
	right := panel{title: "Server memory per idle connection (RSS growth / connections)",
		xlabel: "idle connections", ylabel: "KB per connection",
		refs: []ref{{y: 10, label: "target 10 KB"}}}
	for _, r := range res.Idle {
		var pts [][2]float64
		for _, p := range r.Points {
			pts = append(pts, [2]float64{float64(p.Conns), p.RSSPerConn / 1024})
		}
		right.series = append(right.series, series{name: seriesName(r.Server, r.Transport), col: colorOf(r.Server, r.Transport), pts: pts})
	}
	left.draw(img, image.Rect(0, 0, w/2, h))
	right.draw(img, image.Rect(w/2, 0, w, h))

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type series struct {
	name   string
	col    color.RGBA
	dashed bool
	pts    [][2]float64
}

type ref struct {
	y     float64
	label string
}

type panel struct {
	title, xlabel, ylabel string
	series                []series
	refs                  []ref
}

var (
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{110, 110, 110, 255}
	grid  = color.RGBA{225, 225, 225, 255}
	red   = color.RGBA{200, 40, 40, 255}
)

func seriesName(server, transport string) string {
	switch server {
	case "baseline":
		return "plain net/http SSE"
	case "raw":
		return "floor: bare writes, no HTTP"
	}
	return "Sluice " + upper(transport)
}

func colorOf(server, transport string) color.RGBA {
	switch {
	case server == "baseline":
		return color.RGBA{120, 120, 120, 255}
	case server == "raw":
		return color.RGBA{140, 60, 190, 255}
	case transport == "ws":
		return color.RGBA{230, 120, 20, 255}
	case transport == TransportH2:
		return color.RGBA{20, 160, 120, 255}
	}
	return color.RGBA{30, 100, 200, 255}
}

func (p *panel) draw(img *image.RGBA, r image.Rectangle) {
	plot := image.Rect(r.Min.X+80, r.Min.Y+50, r.Max.X-30, r.Max.Y-60)
	text(img, r.Min.X+20, r.Min.Y+25, p.title, black)
	text(img, plot.Min.X-60, plot.Min.Y-10, p.ylabel, grey)
	text(img, (plot.Min.X+plot.Max.X)/2-len(p.xlabel)*7/2, plot.Max.Y+45, p.xlabel, grey)

	var xmax, ymax float64
	for _, s := range p.series {
		for _, pt := range s.pts {
			xmax, ymax = math.Max(xmax, pt[0]), math.Max(ymax, pt[1])
		}
	}
	for _, rf := range p.refs {
		ymax = math.Max(ymax, rf.y)
	}
	if xmax == 0 || ymax == 0 {
		text(img, plot.Min.X+20, plot.Min.Y+40, "not measured", grey)
		return
	}
	xstep, ystep := niceStep(xmax), niceStep(ymax*1.1)
	xmax = math.Ceil(xmax*1.02/xstep) * xstep
	ymax = math.Ceil(ymax*1.1/ystep) * ystep
	px := func(x float64) int { return plot.Min.X + int(x/xmax*float64(plot.Dx())) }
	py := func(y float64) int { return plot.Max.Y - int(y/ymax*float64(plot.Dy())) }

	for x := 0.0; x <= xmax+xstep/2; x += xstep {
		line(img, px(x), plot.Min.Y, px(x), plot.Max.Y, grid, 1, false)
		l := label(x)
		text(img, px(x)-len(l)*7/2, plot.Max.Y+18, l, black)
	}
	for y := 0.0; y <= ymax+ystep/2; y += ystep {
		line(img, plot.Min.X, py(y), plot.Max.X, py(y), grid, 1, false)
		l := label(y)
		text(img, plot.Min.X-10-len(l)*7, py(y)+4, l, black)
	}
	line(img, plot.Min.X, plot.Max.Y, plot.Max.X, plot.Max.Y, black, 1, false)
	line(img, plot.Min.X, plot.Min.Y, plot.Min.X, plot.Max.Y, black, 1, false)
	for _, rf := range p.refs {
		line(img, plot.Min.X, py(rf.y), plot.Max.X, py(rf.y), red, 1, true)
		text(img, plot.Max.X-len(rf.label)*7-4, py(rf.y)-5, rf.label, red)
	}
	for i, s := range p.series {
		for j, pt := range s.pts {
			x, y := px(pt[0]), py(pt[1])
			fill(img, image.Rect(x-3, y-3, x+4, y+4), s.col)
			if j > 0 {
				line(img, px(s.pts[j-1][0]), py(s.pts[j-1][1]), x, y, s.col, 2, s.dashed)
			}
		}
		ly := plot.Min.Y + 14 + 18*i
		line(img, plot.Min.X+12, ly-4, plot.Min.X+40, ly-4, s.col, 2, s.dashed)
		text(img, plot.Min.X+48, ly, s.name, black)
	}
}

// niceStep returns a step of 1, 2 or 5 × 10^k that cuts max into 4 to 10
// parts.
func niceStep(max float64) float64 {
	raw := max / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func label(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%.0fk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// line draws from (x0,y0) to (x1,y1), width pixels wide, dashed or not.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, width int, dashed bool) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy))
	for i := 0; i <= n; i++ {
		if dashed && (i/6)%2 == 1 {
			continue
		}
		x, y := x0, y0
		if n > 0 {
			x, y = x0+dx*i/n, y0+dy*i/n
		}
		for a := range width {
			for b := range width {
				img.SetRGBA(x+a-width/2, y+b-width/2, c)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func upper(s string) string {
	switch s {
	case "sse":
		return "SSE"
	case "ws":
		return "WebSocket"
	case TransportH2:
		return "SSE over HTTP/2"
	}
	return s
}
