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
    public static func parse(_ text: Substring, filter: (Substring) -> Bool = { _ in true }) -> [PrometheusSample] {
        var out: [PrometheusSample] = []
        // "\r\n" is one Character: split on it too, so CRLF pages read line by line.
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            guard let first = line.first, first != "#" else { continue }
            let nameEnd = line.firstIndex { $0 == "{" || $0 == " " } ?? line.endIndex
            let name = line[line.startIndex..<nameEnd]
            guard filter(name) else { continue }
            var labels: [Substring: Substring] = [:]
            var rest = line[nameEnd...]
            if rest.first == "{" {
                guard let close = closingBrace(rest) else { continue }
                labels = parseLabels(rest[rest.index(after: rest.startIndex)..<close])
                rest = rest[rest.index(after: close)...]
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
        var i = s.index(after: s.startIndex)
        while i < s.endIndex {
            let c = s[i]
            if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inQuotes.toggle() } else if c == "}" && !inQuotes { return i }
            i = s.index(after: i)
        }
        return nil
    }

    static func parseLabels(_ s: Substring) -> [Substring: Substring] {
        var labels: [Substring: Substring] = [:]
        var i = s.startIndex
        while i < s.endIndex {
            while i < s.endIndex && (s[i] == "," || s[i] == " ") { i = s.index(after: i) }
            guard let eq = s[i...].firstIndex(of: "=") else { break }
            let key = s[i..<eq]
            var j = s.index(after: eq)
            guard j < s.endIndex, s[j] == "\"" else { break }
            j = s.index(after: j)
            let start = j
            var escaped = false
            while j < s.endIndex {
                if escaped { escaped = false } else if s[j] == "\\" { escaped = true } else if s[j] == "\"" { break }
                j = s.index(after: j)
            }
            labels[key] = s[start..<j]
            i = j < s.endIndex ? s.index(after: j) : j
        }
        return labels
    }
}
