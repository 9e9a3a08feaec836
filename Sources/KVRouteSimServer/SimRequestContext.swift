import Hummingbird
import NIOCore

/// A request context that keeps the request's connection, so failure injection can close
/// it without an answer, as a crashed or misbehaving engine would.
public struct SimRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request arrived on.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
