import Foundation

extension ValidationReport {
    /// The human report: plain aligned columns that read the same in a terminal and in a CI
    /// log. `color` adds ANSI colours to the grade and the verdict (callers pass true only
    /// for a terminal without `NO_COLOR`).
    public func renderTable(color: Bool = false) -> String {
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        let gradeColor = grade == "EXCELLENT" || grade == "VERY GOOD" ? "32" : grade == "GOOD" ? "33" : "31"
        var out = ["Results (\(requests) requests through \(gatewayURL), counters from \(metricsSource))"]

        let improvement = ttftImprovement.map {
            abs($0) < 0.005 ? " (no change)"
                : $0 > 0 ? String(format: " (%.0f%% faster)", $0 * 100) : String(format: " (%.0f%% slower)", -$0 * 100)
        } ?? ""
        let rows: [(String, String)] = [
            ("Delta hit rate", Self.pct(deltaHitRate) + "  " + paint(grade, "1;" + gradeColor)),
            ("Overall hit rate", Self.pct(overallHitRate)),
            ("Hit rate from usage", Self.pct(usageHitRate)),
            ("Stickiness (upstream header)", Self.pct(stickinessHeader)),
            ("Stickiness (engine metrics)", Self.pct(stickinessMetrics)),
            ("Requests / errors", "\(requests) / \(errors)"),
            ("TTFT p50 / p90 / p99", "\(Self.ms(ttftMs.p50)) / \(Self.ms(ttftMs.p90)) / \(Self.ms(ttftMs.p99))"),
            ("TTFT first 3 -> last 3", "\(Self.ms(ttftMs.first3)) -> \(Self.ms(ttftMs.last3))\(improvement)"),
            ("Total p50 / p90 / p99", "\(Self.ms(totalMs.p50)) / \(Self.ms(totalMs.p90)) / \(Self.ms(totalMs.p99))"),
        ]
        let keyWidth = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { out.append("  " + Self.pad(k, keyWidth) + "  " + v) }

        if !perEngine.isEmpty {
            out.append("")
            // The pod-name column only when the engines are pods.
            let named = perEngine.contains { $0.name != nil }
            let table = [(named ? ["engine"] : []) + ["address", "Δqueries", "Δhits", "hit rate", "requests"]] + perEngine.map {
                (named ? [$0.name ?? "-"] : [])
                    + [$0.address, Self.count($0.queryDelta), Self.count($0.hitDelta), Self.pct($0.hitRate), "\($0.requests)"]
            }
            out += Self.columns(table, rightAligned: named ? [2, 3, 4, 5] : [1, 2, 3, 4])
        }
        if sessions.count > 1 {
            out.append("")
            let table = [["session", "requests", "errors", "stickiness", "top upstream"]] + sessions.map {
                [$0.id, "\($0.requests)", "\($0.errors)", Self.pct($0.stickiness), $0.topUpstream ?? "-"]
            }
            out += Self.columns(table, rightAligned: [1, 2, 3])
        }
        if !warnings.isEmpty {
            out.append("")
            for w in warnings { out.append("  warning: \(w)") }
        }
        out.append("")
        out.append(passed ? paint("PASS", "1;32") : paint("FAIL", "1;31") + ": " + failures.joined(separator: "; "))
        return out.joined(separator: "\n")
    }

    static func count(_ v: Double) -> String { Int64(exactly: v.rounded()).map(String.init) ?? "\(v)" }

    /// Pads by characters (Δ counts as one), which is what a terminal shows.
    static func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }

    static func columns(_ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        guard let header = rows.first else { return [] }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        var lines: [String] = []
        for (i, row) in rows.enumerated() {
            lines.append("  " + row.enumerated().map { c, v in
                rightAligned.contains(c) ? String(repeating: " ", count: widths[c] - v.count) + v : pad(v, widths[c])
            }.joined(separator: "  ").trimmingTrailingSpaces())
            if i == 0 { lines.append("  " + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        return lines
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
