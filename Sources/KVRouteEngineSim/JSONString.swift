/// One JSON string literal writer for everything the simulator serialises by hand: the
/// same text as Python's `json.dumps(s, ensure_ascii=False)` (which the Llama 3.2 chat
/// template's `tojson` uses), and valid JSON for the OpenAI answers.
public enum JSONString {
    public static func quoted(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
}
