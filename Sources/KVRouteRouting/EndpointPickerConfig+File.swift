import Foundation
import KVRouteCore

extension EndpointPickerConfig {
    /// Reads an EndpointPickerConfig file (the core parses text; reading files is the front
    /// doors' business).
    public static func load(path: String) throws -> EndpointPickerConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KVRouteError(code: .invalidConfig, message: "cannot read \(path)", cause: error)
        }
        return try load(yaml: text)
    }
}
