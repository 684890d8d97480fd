import Foundation

/// A small plotter: line, step and scatter series on a shared x axis, with vertical markers
/// (crashes), as one inline SVG element. No scripts, no external resources. Series of more
/// points than the plot has pixels are reduced to each pixel column's minimum and maximum, so
/// a night of 100,000 resizes draws the same picture in a bounded number of elements.
struct SVGPlot {
  enum Style { case line, step, scatter, linePoints }
  struct Series {
    var name: String
    var color: String
    var style: Style
    var dashed = false
    var points: [(x: Double, y: Double)]
  }
  struct Marker {
    var x: Double
    var label: String
  }

  var id: String
  var title: String
  var xLabel: String
  var yLabel: String
  var series: [Series]
  var markers: [Marker] = []
  /// The markers' name in the legend.
  var markerName = "crash"
  /// The y axis starts at 0 (else at the smallest value, for orders 18 to 30).
  var yFromZero = true
  /// x values are Unix seconds: tick labels are dates.
  var xIsTime = false
  var width = 960.0
  var height = 280.0

  static let palette = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f", "#d62728",
  ]

  let left = 64.0, right = 16.0, bottom = 44.0
  /// Below the title, the legend's rows; then the plot area (`height` tall with the axes).
  var top: Double { 28 + 16 * Double(legendLayout().rows) }
  var totalHeight: Double { height + 16 * Double(legendLayout().rows) }
  var plotHeight: Double { height - 28 - bottom }

  var hasData: Bool { series.contains { !$0.points.isEmpty } }

  func render() -> String {
    let all = series.flatMap(\.points)
    let xs = all.map(\.x) + markers.map(\.x)
    var x0 = xs.min() ?? 0
    var x1 = xs.max() ?? 1
    if x1 <= x0 {
      // One x value: a day either side of a time (a single night), else one unit.
      let pad = xIsTime ? 43_200.0 : 1
      (x0, x1) = (x0 - pad, x1 + pad)
    }
    let lowest = all.map(\.y).min() ?? 0
    var y0 = yFromZero ? min(0, lowest) : lowest
    var y1 = all.map(\.y).max() ?? 1
    if y1 <= y0 { (y0, y1) = (y0 - (yFromZero ? 0 : 1), y0 + 1) }
    y1 += (y1 - y0) * 0.05
    if !yFromZero { y0 -= (y1 - y0) * 0.05 }
    let pw = width - left - right
    let ph = plotHeight
    let top = top
    let sx = { (x: Double) in left + (x - x0) / (x1 - x0) * pw }
    let sy = { (y: Double) in top + ph - (y - y0) / (y1 - y0) * ph }
    var s =
      "<svg id=\"\(HTML.escape(id))\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(totalHeight))\" viewBox=\"0 0 \(Int(width)) \(Int(totalHeight))\" role=\"img\" aria-label=\"\(HTML.escape(title))\">"
    s += "<title>\(HTML.escape(title))</title>"
    s +=
      "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(totalHeight))\" fill=\"#fff\"/>"
    s += "<text x=\"\(left)\" y=\"18\" class=\"pt\">\(HTML.escape(title))</text>"
    s += axes(x0: x0, x1: x1, y0: y0, y1: y1, sx: sx, sy: sy)
    for m in markers {
      let x = f(sx(m.x))
      s +=
        "<line class=\"crash\" x1=\"\(x)\" y1=\"\(f(top))\" x2=\"\(x)\" y2=\"\(f(top + ph))\" stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"><title>\(HTML.escape(m.label))</title></line>"
    }
    for se in series where !se.points.isEmpty {
      s += draw(se, x0: x0, x1: x1, sx: sx, sy: sy)
    }
    s += legend()
    return s + "</svg>"
  }

  func axes(
    x0: Double, x1: Double, y0: Double, y1: Double, sx: (Double) -> Double, sy: (Double) -> Double
  ) -> String {
    let ph = plotHeight
    let top = top
    var s =
      "<g class=\"axes\" stroke=\"#888\" fill=\"none\"><line x1=\"\(f(left))\" y1=\"\(f(top + ph))\" x2=\"\(f(width - right))\" y2=\"\(f(top + ph))\"/><line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + ph))\"/></g>"
    for v in Self.ticks(y0, y1, 5) {
      s +=
        "<line x1=\"\(f(left))\" x2=\"\(f(width - right))\" y1=\"\(f(sy(v)))\" y2=\"\(f(sy(v)))\" stroke=\"#eee\"/><text x=\"\(f(left - 6))\" y=\"\(f(sy(v) + 4))\" class=\"tk\" text-anchor=\"end\">\(Self.label(v))</text>"
    }
    for v in Self.ticks(x0, x1, 6) {
      // Dates over days; month, day and time within two days.
      let time = Format.time(v)
      let text =
        !xIsTime
        ? Self.label(v)
        : x1 - x0 >= 2 * 86_400 ? String(time.prefix(10)) : String(time.dropFirst(5).prefix(11))
      s +=
        "<text x=\"\(f(sx(v)))\" y=\"\(f(top + ph + 16))\" class=\"tk\" text-anchor=\"middle\">\(HTML.escape(text))</text>"
    }
    s +=
      "<text x=\"\(f(left + (width - left - right) / 2))\" y=\"\(f(totalHeight - 6))\" class=\"al\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>"
    s +=
      "<text transform=\"translate(14 \(f(top + ph / 2))) rotate(-90)\" class=\"al\" text-anchor=\"middle\">\(HTML.escape(yLabel))</text>"
    return s
  }

  func draw(
    _ se: Series, x0: Double, x1: Double, sx: (Double) -> Double, sy: (Double) -> Double
  ) -> String {
    let pts = Self.reduce(se.points, x0: x0, x1: x1, columns: Int(width - left - right))
    let name = HTML.escape(se.name)
    switch se.style {
    case .scatter:
      var s = "<g class=\"series\" fill=\"\(se.color)\" fill-opacity=\"0.6\"><title>\(name)</title>"
      for p in pts { s += "<circle cx=\"\(f(sx(p.x)))\" cy=\"\(f(sy(p.y)))\" r=\"1.8\"/>" }
      return s + "</g>"
    case .linePoints:
      let line = draw(
        Series(name: se.name, color: se.color, style: .line, dashed: se.dashed, points: pts),
        x0: x0,
        x1: x1, sx: sx, sy: sy)
      var s = "<g class=\"points\" fill=\"\(se.color)\"><title>\(name)</title>"
      for p in pts { s += "<circle cx=\"\(f(sx(p.x)))\" cy=\"\(f(sy(p.y)))\" r=\"2.5\"/>" }
      return line + s + "</g>"
    case .line, .step:
      var d = ""
      var last: (x: Double, y: Double)?
      for p in pts {
        if let l = last, se.style == .step { d += " \(f(sx(p.x))),\(f(sy(l.y)))" }
        d += " \(f(sx(p.x))),\(f(sy(p.y)))"
        last = p
      }
      return
        "<polyline class=\"series\" fill=\"none\" stroke=\"\(se.color)\" stroke-width=\"1.5\"\(se.dashed ? " stroke-dasharray=\"5 3\"" : "") points=\"\(d.dropFirst())\"><title>\(name)</title></polyline>"
    }
  }

  /// The legend's entries (a series, or the crash marker) laid out in rows under the title,
  /// wrapped at the plot's width.
  func legendLayout() -> (items: [(x: Double, row: Int, series: Series?)], rows: Int) {
    var items: [(x: Double, row: Int, series: Series?)] = []
    var x = left
    var row = 0
    var entries: [(Series?, String)] = series.filter { !$0.points.isEmpty }.map { ($0, $0.name) }
    if !markers.isEmpty { entries.append((nil, markerName)) }
    for (se, name) in entries {
      let w = 22 + Double(min(name.count, 60)) * 6.5
      if x + w > width - right && x > left {
        row += 1
        x = left
      }
      items.append((x, row, se))
      x += w
    }
    return (items, items.isEmpty ? 0 : row + 1)
  }

  func legend() -> String {
    var s = ""
    for (x, row, se) in legendLayout().items {
      let y = 26 + 16 * Double(row)
      if let se {
        s +=
          "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"12\" height=\"4\" fill=\"\(se.color)\"/><text x=\"\(f(x + 16))\" y=\"\(f(y + 6))\" class=\"lg\">\(HTML.escape(se.name))</text>"
      } else {
        s +=
          "<line x1=\"\(f(x))\" x2=\"\(f(x + 12))\" y1=\"\(f(y + 2))\" y2=\"\(f(y + 2))\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/><text x=\"\(f(x + 16))\" y=\"\(f(y + 6))\" class=\"lg\">\(HTML.escape(markerName))</text>"
      }
    }
    return s
  }

  /// At most two points (min and max y, in x order) per pixel column.
  static func reduce(_ p: [(x: Double, y: Double)], x0: Double, x1: Double, columns: Int)
    -> [(x: Double, y: Double)]
  {
    guard p.count > 2 * columns, columns > 0 else { return p.sorted { $0.x < $1.x } }
    var lo = [(x: Double, y: Double)?](repeating: nil, count: columns + 1)
    var hi = lo
    for q in p {
      let c = Int((q.x - x0) / (x1 - x0) * Double(columns))
      let i = min(max(c, 0), columns)
      if lo[i] == nil || q.y < lo[i]!.y { lo[i] = q }
      if hi[i] == nil || q.y > hi[i]!.y { hi[i] = q }
    }
    var out: [(x: Double, y: Double)] = []
    for i in 0...columns {
      guard let a = lo[i], let b = hi[i] else { continue }
      if a.x == b.x && a.y == b.y {
        out.append(a)
      } else {
        out += a.x <= b.x ? [a, b] : [b, a]
      }
    }
    return out
  }

  /// Round tick values between a and b, about n of them.
  static func ticks(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
    let span = b - a
    guard span > 0, span.isFinite else { return [a] }
    let raw = span / Double(n)
    let mag = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
    var v = ceil(a / step) * step
    var out: [Double] = []
    while v <= b + step * 1e-9 && out.count < 50 {
      out.append(v)
      v += step
    }
    return out
  }

  static func label(_ v: Double) -> String {
    if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
    return String(format: abs(v) < 1 ? "%.3g" : "%.1f", v)
  }

  func f(_ v: Double) -> String { String(format: "%.1f", v) }
}

/// HTML text: every `<`, `>`, `&` and quote escaped, control characters replaced (the same
/// rule as XML's, Exports.xml).
enum HTML {
  static func escape(_ s: String) -> String { Exports.xml(s) }
}
