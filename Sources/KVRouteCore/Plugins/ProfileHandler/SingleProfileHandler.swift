/// `single-profile-handler`: one profile per request — the configuration's primary (the one
/// named `default`, else the first) — with kvroute's two mesh rules, each naming the profile
/// it hands the request to:
///
/// - `headersOnlyProfile` (default `consistent-hash`): a request whose body the picker does
///   not see but which carries a session id (and no `x-session-token`) goes by the session
///   ring, so every request of the session lands on one engine, across picker restarts.
/// - `fallbackProfile` (default `consistent-hash`): when the profile fails with anything but
///   "no candidates", the request goes by the ring, as a mesh DestinationRule behind a
///   failed picker would route it.
///
/// `none` turns a rule off. `consistent-hash` needs no definition: kvroute supplies it (a
/// health filter that ignores metrics age and a `consistent-hash-picker`).
public struct SingleProfileHandler: ProfileHandler {
    public let type = "single-profile-handler"
    public let name: String
    public let headersOnlyProfile: String?
    public let fallbackProfile: String?

    public static let meshProfile = "consistent-hash"

    public init(name: String, headersOnlyProfile: String? = meshProfile, fallbackProfile: String? = meshProfile) {
        self.name = name
        self.headersOnlyProfile = headersOnlyProfile
        self.fallbackProfile = fallbackProfile
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> SingleProfileHandler {
        func profile(_ key: String) throws -> String? {
            let v = try p.string(key, default: meshProfile)
            return v == "none" || v?.isEmpty == true ? nil : v
        }
        return SingleProfileHandler(name: name, headersOnlyProfile: try profile("headersOnlyProfile"), fallbackProfile: try profile("fallbackProfile"))
    }

    public func profile(for request: InferenceRequest, headersOnly: Bool) -> String? {
        guard headersOnly, request.sessionKey != nil, request.headers["x-session-token"] == nil else { return nil }
        return headersOnlyProfile
    }

    public func fallback(after error: any Error, in failed: String) -> String? {
        failed == fallbackProfile ? nil : fallbackProfile
    }

    public var impliedProfiles: [String] { [Self.meshProfile] }
}
