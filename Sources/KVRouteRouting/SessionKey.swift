import HTTPTypes

/// The seed's session header normalization: `x-session-id`, else the `session-id` header,
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
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
