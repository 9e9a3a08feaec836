import HTTPTypes

/// The session normalization the deployed EnvoyFilter's Lua filter also applies: `x-session-id`, else the `session-id` header,
/// else the `session-id` cookie.
public enum SessionKey {
    public static let header = HTTPField.Name("x-session-id")!
    public static let plainHeader = HTTPField.Name("session-id")!

    public static func normalize(_ headers: HTTPFields) -> String? {
        if let v = headers[header], !v.isEmpty { return v }
        if let v = headers[plainHeader], !v.isEmpty { return v }
        for cookieLine in headers[values: .cookie] {
            for pair in cookieLine.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingSpaces == "session-id" {
                    let v = String(kv[1].trimmingSpaces)
                    if !v.isEmpty { return v }
                }
            }
        }
        return nil
    }

    /// The same from header pairs (Envoy's ext_proc header map); other headers are ignored.
    public static func normalize(pairs: [(String, String)]) -> String? {
        var fields = HTTPFields()
        for (k, v) in pairs {
            switch k.lowercased() {
            case "x-session-id", "session-id", "cookie":
                if let name = HTTPField.Name(k) { fields.append(HTTPField(name: name, value: v)) }
            default: continue
            }
        }
        return normalize(fields)
    }

    /// The header a response carries naming its engine (base64 of `ip:port`), which the next
    /// request sends back for session-affinity-scorer.
    public static let tokenHeader = "x-session-token"
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
