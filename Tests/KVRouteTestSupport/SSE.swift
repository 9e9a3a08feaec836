import KVRouteSSE

/// The events of a whole server-sent-events body, read by the one parser kvroute uses.
public func serverSentEvents(_ body: String) -> [ServerSentEvent] {
    var parser = ServerSentEventParser()
    var events = parser.feed(body)
    if let last = parser.finish() { events.append(last) }
    return events
}
