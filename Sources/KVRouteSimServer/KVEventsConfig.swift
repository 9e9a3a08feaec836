import Foundation
import KVRouteEngineSim
import KVRouteKVEvents

/// vLLM's `--kv-events-config` (the same JSON), plus how the simulator lays events out.
///
/// Several engines in one process each get their own sockets the way vLLM gives each data
/// parallel rank its own: engine i publishes on the endpoint's port + i (and replays on the
/// replay port + i); `ipc://` and `inproc://` endpoints get `_dp<i>` appended. A port of
/// `*` or 0 lets each engine take any free port. In the topic, `<pod>` becomes the engine's
/// pod name and `<model>` the served model name.
public struct KVEventsConfig: Sendable, Hashable {
    public var enableKVCacheEvents: Bool
    /// `zmq` publishes; `null` records nothing.
    public var publisher: String
    public var endpoint: String
    public var replayEndpoint: String?
    public var bufferSteps: Int
    public var highWaterMark: Int
    public var maxQueueSize: Int
    public var topic: String
    /// `.vllm032` unless told otherwise (`--kv-events-layout`).
    public var format: KVEventWireFormat
    /// Events name blocks by their full 32-byte digest instead of its low 64 bits.
    public var hashBytes: Bool

    public init(
        enableKVCacheEvents: Bool = true, publisher: String = "zmq", endpoint: String = "tcp://*:5557",
        replayEndpoint: String? = nil, bufferSteps: Int = 10_000, highWaterMark: Int = 100_000, maxQueueSize: Int = 100_000,
        topic: String = "", format: KVEventWireFormat = .vllm032, hashBytes: Bool = false
    ) {
        self.enableKVCacheEvents = enableKVCacheEvents
        self.publisher = publisher
        self.endpoint = endpoint
        self.replayEndpoint = replayEndpoint
        self.bufferSteps = bufferSteps
        self.highWaterMark = highWaterMark
        self.maxQueueSize = maxQueueSize
        self.topic = topic
        self.format = format
        self.hashBytes = hashBytes
    }

    /// Whether engines publish at all.
    public var publishes: Bool { enableKVCacheEvents && publisher == "zmq" }

    /// Reads vLLM's JSON: `{"enable_kv_cache_events": true, "publisher": "zmq",
    /// "endpoint": "tcp://*:5557", "replay_endpoint": …, "buffer_steps": …, "hwm": …,
    /// "max_queue_size": …, "topic": …}`. A field it does not know is refused by name.
    public static func parse(_ text: String) throws(EngineError) -> KVEventsConfig {
        func bad(_ m: String) -> EngineError { EngineError(code: .invalidConfiguration, message: "--kv-events-config: \(m)") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let json = object as? [String: Any] else {
            throw bad("expected a JSON object, e.g. {\"enable_kv_cache_events\":true,\"publisher\":\"zmq\",\"endpoint\":\"tcp://*:5557\"}")
        }
        var c = KVEventsConfig(enableKVCacheEvents: false, publisher: "")
        for (key, value) in json where !(value is NSNull) {
            func string() throws(EngineError) -> String {
                guard let s = value as? String else { throw bad("\(key) must be a string") }
                return s
            }
            func count() throws(EngineError) -> Int {
                guard let n = value as? NSNumber, !["c", "B"].contains(String(cString: n.objCType)), let i = Int(exactly: n.doubleValue), i >= 0, i <= 1 << 30 else {
                    throw bad("\(key) must be a whole number in 0...\(1 << 30)")
                }
                return i
            }
            switch key {
            case "enable_kv_cache_events":
                guard let n = value as? NSNumber, ["c", "B"].contains(String(cString: n.objCType)) else { throw bad("enable_kv_cache_events must be true or false") }
                c.enableKVCacheEvents = n.boolValue
            case "publisher":
                c.publisher = try string()
                guard ["zmq", "null"].contains(c.publisher) else { throw bad("publisher must be \"zmq\" or \"null\", got \"\(c.publisher)\"") }
            case "endpoint": c.endpoint = try string()
            case "replay_endpoint": c.replayEndpoint = try string()
            case "buffer_steps": c.bufferSteps = try count()
            case "hwm": c.highWaterMark = try count()
            case "max_queue_size":
                c.maxQueueSize = try count()
                guard c.maxQueueSize > 0 else { throw bad("max_queue_size must be positive") }
            case "topic": c.topic = try string()
            default: throw bad("unknown field \"\(key)\"")
            }
        }
        // vLLM: the publisher defaults to zmq when events are on, null otherwise.
        if c.publisher.isEmpty { c.publisher = c.enableKVCacheEvents ? "zmq" : "null" }
        return c
    }

    /// The publisher of engine `index`: its own port(s), its topic.
    public func publisherConfiguration(engine index: Int, podName: String, model: String) throws(EngineError) -> KVEventPublisher.Configuration {
        KVEventPublisher.Configuration(
            endpoint: try Self.offset(endpoint, by: index), replayEndpoint: try replayEndpoint.map { e throws(EngineError) in try Self.offset(e, by: index) },
            topic: topic.replacingOccurrences(of: "<pod>", with: podName).replacingOccurrences(of: "<model>", with: model),
            format: format, bufferSteps: bufferSteps, highWaterMark: highWaterMark, maxQueuedBatches: maxQueueSize)
    }

    /// vLLM's `offset_endpoint_port`: a TCP port moves up by `index`; other transports get
    /// `_dp<index>`. A wildcard or zero port stays as it is (every socket takes a free port).
    static func offset(_ endpoint: String, by index: Int) throws(EngineError) -> String {
        guard index > 0 else { return endpoint }
        guard endpoint.hasPrefix("tcp://") else { return "\(endpoint)_dp\(index)" }
        guard let colon = endpoint.lastIndex(of: ":"), colon > endpoint.index(endpoint.startIndex, offsetBy: 5) else {
            throw EngineError(code: .invalidConfiguration, message: "--kv-events-config: endpoint \(endpoint) has no port")
        }
        let portText = endpoint[endpoint.index(after: colon)...]
        if portText == "*" || portText == "0" { return endpoint }
        guard let port = Int(portText), port > 0, port + index <= 65_535 else {
            throw EngineError(code: .invalidConfiguration, message: "--kv-events-config: endpoint \(endpoint): engine \(index) would need port \(portText) + \(index), beyond 65535")
        }
        return "\(endpoint[..<colon]):\(port + index)"
    }
}
