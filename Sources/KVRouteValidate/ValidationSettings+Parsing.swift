import Foundation

extension ValidationSettings {
    /// A threshold given as a fraction (`0.95`) or a percentage (`95`, `95%`): values above
    /// 1 and values ending in `%` are percentages. `1` means 100 %.
    public static func parseThreshold(_ text: String, flag: String) throws -> Double {
        var t = text.trimmingCharacters(in: .whitespaces)
        var percent = false
        if t.hasSuffix("%") {
            percent = true
            t.removeLast()
        }
        guard let v = Double(t), v.isFinite, v >= 0 else {
            throw ValidationFailure(.usage, "\(flag) \(text) is not a number (give 0.95 or 95 for 95 %)")
        }
        let fraction = percent || v > 1 ? v / 100 : v
        guard fraction <= 1 else { throw ValidationFailure(.usage, "\(flag) \(text) is above 100 %") }
        return fraction
    }

    /// `URL,URL,...` (spaces and empty items ignored).
    public static func parseList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
