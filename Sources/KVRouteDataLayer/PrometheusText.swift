/// One sample of the Prometheus text exposition format.
public struct PrometheusSample: Sendable, Hashable {
    public var name: Substring
    public var labels: [Substring: Substring]
    public var value: Double
}

/// A small parser for the Prometheus text format (version 0.0.4): enough for engine
/// `/metrics` pages. Comment lines are skipped; `filter` keeps only samples whose metric name
/// passes, so a scrape of a big page stays cheap.
public enum PrometheusText {
    /// Scans the page byte by byte: a line whose metric name `filter` rejects costs one pass
    /// over its name, so the histograms that fill most of an engine's page are skipped before
    /// their labels are read. Separators are ASCII, so every slice falls on a character
    /// boundary of `text`.
    public static func parse(_ text: Substring, filter: (Substring) -> Bool = { _ in true }) -> [PrometheusSample] {
        var out: [PrometheusSample] = []
        let bytes = text.utf8
        var lineStart = bytes.startIndex
        while lineStart < bytes.endIndex {
            var lineEnd = lineStart
            while lineEnd < bytes.endIndex, bytes[lineEnd] != UInt8(ascii: "\n") { bytes.formIndex(after: &lineEnd) }
            defer { lineStart = lineEnd < bytes.endIndex ? bytes.index(after: lineEnd) : lineEnd }
            // A CRLF page: the line ends before its "\r".
            var end = lineEnd
            if end > lineStart, bytes[bytes.index(before: end)] == UInt8(ascii: "\r") { bytes.formIndex(before: &end) }
            guard lineStart < end else { continue }
            let first = bytes[lineStart]
            if first == UInt8(ascii: "#") || first == UInt8(ascii: "\r") { continue }
            var nameEnd = lineStart
            while nameEnd < end, bytes[nameEnd] != UInt8(ascii: "{"), bytes[nameEnd] != UInt8(ascii: " ") { bytes.formIndex(after: &nameEnd) }
            let name = text[lineStart..<nameEnd]
            guard filter(name) else { continue }
            let line = text[lineStart..<end]
            var labels: [Substring: Substring] = [:]
            var rest = line[nameEnd...]
            if rest.utf8.first == UInt8(ascii: "{") {
                guard let close = closingBrace(rest) else { continue }
                labels = parseLabels(rest[rest.utf8.index(after: rest.startIndex)..<close])
                rest = rest[rest.utf8.index(after: close)...]
            }
            let fields = rest.split(separator: " ", omittingEmptySubsequences: true)
            guard let raw = fields.first, let value = parseValue(raw) else { continue }
            out.append(PrometheusSample(name: name, labels: labels, value: value))
        }
        return out
    }

    static func parseValue(_ s: Substring) -> Double? {
        switch s {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(s)
        }
    }

    /// The `}` closing the label set, skipping braces inside quoted values.
    static func closingBrace(_ s: Substring) -> Substring.Index? {
        var inQuotes = false
        var escaped = false
        let u = s.utf8
        var i = u.index(after: u.startIndex)
        while i < u.endIndex {
            let c = u[i]
            if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inQuotes.toggle() } else if c == UInt8(ascii: "}") && !inQuotes { return i }
            u.formIndex(after: &i)
        }
        return nil
    }

    static func parseLabels(_ s: Substring) -> [Substring: Substring] {
        var labels: [Substring: Substring] = [:]
        let u = s.utf8
        var i = u.startIndex
        while i < u.endIndex {
            while i < u.endIndex && (u[i] == UInt8(ascii: ",") || u[i] == UInt8(ascii: " ")) { u.formIndex(after: &i) }
            guard let eq = u[i...].firstIndex(of: UInt8(ascii: "=")) else { break }
            let key = s[i..<eq]
            var j = u.index(after: eq)
            guard j < u.endIndex, u[j] == UInt8(ascii: "\"") else { break }
            u.formIndex(after: &j)
            let start = j
            var escaped = false
            while j < u.endIndex {
                if escaped { escaped = false } else if u[j] == UInt8(ascii: "\\") { escaped = true } else if u[j] == UInt8(ascii: "\"") { break }
                u.formIndex(after: &j)
            }
            labels[key] = s[start..<j]
            i = j < u.endIndex ? u.index(after: j) : j
        }
        return labels
    }
}
