/// The OpenAI API a request uses, from its path suffix.
public enum APIKind: String, Sendable, Hashable, CaseIterable {
    case chatCompletions = "chat/completions"
    case completions
    case responses
    case embeddings

    public init?(path: String) {
        var p = Substring(path)
        if let q = p.firstIndex(of: "?") { p = p[..<q] }
        while p.hasSuffix("/") { p = p.dropLast() }
        if p.hasSuffix("/chat/completions") { self = .chatCompletions }
        else if p.hasSuffix("/completions") { self = .completions }
        else if p.hasSuffix("/responses") { self = .responses }
        else if p.hasSuffix("/embeddings") { self = .embeddings }
        else { return nil }
    }
}

public struct ChatMessage: Sendable, Hashable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// What the prompt of a request is, as far as prefix matching cares.
public enum PromptContent: Sendable, Hashable {
    case text(String)
    case messages([ChatMessage])
    case none
}

/// One request as the decision core sees it: parsed once by the adapter.
public struct InferenceRequest: Sendable {
    public var requestID: String
    public var model: String
    public var apiKind: APIKind
    public var prompt: PromptContent
    /// The normalised session id (`x-session-id`, `session-id` header or cookie).
    public var sessionKey: String?
    /// Lower-cased headers that plugins read (for example `x-session-token`).
    public var headers: [String: String]
    /// Restricts the candidates (nil: no restriction; empty: nothing allowed).
    public var subsetHint: [EndpointAddress]?

    public init(
        requestID: String, model: String, apiKind: APIKind = .chatCompletions, prompt: PromptContent,
        sessionKey: String? = nil, headers: [String: String] = [:], subsetHint: [EndpointAddress]? = nil
    ) {
        self.requestID = requestID
        self.model = model
        self.apiKind = apiKind
        self.prompt = prompt
        self.sessionKey = sessionKey
        self.headers = headers
        self.subsetHint = subsetHint
    }
}
