import Foundation

/// Self-contained SVG charts of a report: hit rate against the upper bound, TTFT CDF per
/// policy, and requests per engine.
public enum BenchPlots {
    static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    public static func write(_ full: BenchReport, to directory: String) throws -> [String] {
        // One load level per chart: the one nearest the cluster's capacity.
        var report = full
        if let load = full.results.compactMap(\.load).min(by: { abs($0 - 1) < abs($1 - 1) }) {
            report.results = full.results.filter { $0.load == load }
            report.workload += String(format: " at load %.2f", load)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let files = [("hit-rate.svg", hitRate(report)), ("ttft-cdf.svg", ttftCDF(report)), ("engine-load.svg", engineLoad(report))]
        var written: [String] = []
        for (name, svg) in files {
            let path = (directory as NSString).appendingPathComponent(name)
            try svg.write(toFile: path, atomically: true, encoding: .utf8)
            written.append(path)
        }
        return written
    }

    static func frame(_ title: String, _ body: String, width: Int = 760, height: Int = 420) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(title)</text>
        \(body)
        </svg>
        """
    }

    static func hitRate(_ r: BenchReport) -> String {
        let left = 60.0, top = 40.0, w = 660.0, h = 300.0
        let n = Double(max(r.results.count, 1))
        var body = ""
        for k in 0...4 {
            let y = top + h - Double(k) * h / 4
            body += "<line x1=\"\(left)\" x2=\"\(left + w)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#ddd\"/><text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(k * 25)%</text>"
        }
        for (i, p) in r.results.enumerated() {
            let bw = w / n * 0.6, x = left + (Double(i) + 0.2) * w / n, bh = p.hitRate * h
            body += "<rect x=\"\(x)\" y=\"\(top + h - bh)\" width=\"\(bw)\" height=\"\(bh)\" fill=\"\(colors[i % colors.count])\"/>"
            body += "<text x=\"\(x + bw / 2)\" y=\"\(top + h - bh - 6)\" text-anchor=\"middle\">\(String(format: "%.1f%%", p.hitRate * 100))</text>"
            body += "<text x=\"\(x + bw / 2)\" y=\"\(top + h + 18)\" text-anchor=\"middle\">\(p.policy)</text>"
        }
        let upper = r.results.map(\.upperBoundHitRate).max() ?? 0, capacity = r.results.map(\.clusterCapacityHitRate).max() ?? 0
        for (bound, label, dash) in [(upper, "upper bound", "6 4"), (capacity, "cluster capacity", "2 3")] {
            let y = top + h - bound * h
            body += "<line x1=\"\(left)\" x2=\"\(left + w)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"black\" stroke-dasharray=\"\(dash)\"/><text x=\"\(left + w)\" y=\"\(y - 4)\" text-anchor=\"end\">\(label) \(String(format: "%.1f%%", bound * 100))</text>"
        }
        return frame("Prefix-cache hit rate (\(r.workload), \(r.engines) engines)", body)
    }

    static func ttftCDF(_ r: BenchReport) -> String {
        let left = 60.0, top = 40.0, w = 560.0, h = 320.0
        let maxT = max(1, r.results.map { Stats.percentile($0.ttftsMs, 0.99) }.max() ?? 1)
        var body = ""
        for k in 0...4 {
            let y = top + h - Double(k) * h / 4
            body += "<line x1=\"\(left)\" x2=\"\(left + w)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#ddd\"/><text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(k * 25)%</text>"
            let x = left + Double(k) * w / 4
            body += "<text x=\"\(x)\" y=\"\(top + h + 18)\" text-anchor=\"middle\">\(BenchReport.ms(maxT * Double(k) / 4))</text>"
        }
        for (i, p) in r.results.enumerated() where !p.ttftsMs.isEmpty {
            let step = max(1, p.ttftsMs.count / 300)
            var pts: [String] = []
            var j = 0
            while j < p.ttftsMs.count {
                let x = left + min(p.ttftsMs[j], maxT) / maxT * w
                let y = top + h - Double(j + 1) / Double(p.ttftsMs.count) * h
                pts.append(String(format: "%.1f,%.1f", x, y))
                j += step
            }
            body += "<polyline fill=\"none\" stroke=\"\(colors[i % colors.count])\" stroke-width=\"2\" points=\"\(pts.joined(separator: " "))\"/>"
            body += "<rect x=\"\(left + w + 20)\" y=\"\(top + Double(i) * 20)\" width=\"12\" height=\"12\" fill=\"\(colors[i % colors.count])\"/><text x=\"\(left + w + 38)\" y=\"\(top + Double(i) * 20 + 10)\">\(p.policy)</text>"
        }
        return frame("TTFT CDF (to the p99 of the slowest policy)", body)
    }

    static func engineLoad(_ r: BenchReport) -> String {
        let left = 60.0, top = 40.0, w = 660.0, h = 300.0
        let maxLoad = Double(r.results.flatMap(\.requestsPerEngine).max() ?? 1)
        let groups = Double(max(r.results.count, 1))
        var body = ""
        for (i, p) in r.results.enumerated() {
            let gx = left + Double(i) * w / groups
            let bw = w / groups * 0.8 / Double(max(p.requestsPerEngine.count, 1))
            for (e, n) in p.requestsPerEngine.enumerated() {
                let bh = Double(n) / maxLoad * h
                body += "<rect x=\"\(gx + Double(e) * bw)\" y=\"\(top + h - bh)\" width=\"\(max(1, bw - 1))\" height=\"\(bh)\" fill=\"\(colors[i % colors.count])\"/>"
            }
            body += "<text x=\"\(gx + w / groups * 0.4)\" y=\"\(top + h + 18)\" text-anchor=\"middle\">\(p.policy)</text>"
            body += "<text x=\"\(gx + w / groups * 0.4)\" y=\"\(top + h + 34)\" text-anchor=\"middle\" fill=\"#555\">max/mean \(String(format: "%.2f", p.loadMaxOverMean))</text>"
        }
        return frame("Requests per engine", body, height: 400)
    }
}
