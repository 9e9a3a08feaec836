import Foundation
import KVRouteCore
import KVRouteEngineSim
import Logging
import Prometheus

/// Precise prefix-cache routing in a front door: when the routing configuration uses
/// `precise-prefix-cache-scorer`, one ``PreciseIndexService`` follows every engine's KV events
/// and its ``PreciseIndexLookup`` is installed in the Scheduler's ledger
/// (``install(into:)``); each admission then tells the index which engine got which prompt
/// blocks (``HashAgreement``). Run ``service`` in the front door's ServiceGroup.
///
/// Where an engine publishes, first match wins:
/// 1. ``Options/eventEndpoints``: one `tcp://host:port` per engine, in the engines' order;
/// 2. ``Options/eventPortOffset``: the engine's host at its HTTP port + the offset (what
///    `kvroute sim --engines N` does: engine i serves on port + i and publishes on the events
///    port + i, so one offset fits all);
/// 3. the scorer's `kvEventsConfig.zmqEndpoint` (llm-d's name): its port at every engine's
///    host, as llm-d's per-pod subscription does (engines on distinct hosts, e.g. pods).
/// The replay socket (vLLM's `replay_endpoint`) is the engine's host at its HTTP port +
/// ``Options/replayPortOffset`` when one is given.
public struct PreciseRouting: Sendable {
    public struct Options: Sendable {
        public var eventEndpoints: [String]
        public var eventPortOffset: Int?
        public var replayPortOffset: Int?
        /// The index's scope: every engine serves this model.
        public var model: String
        public var replayTimeout: Duration

        public init(eventEndpoints: [String] = [], eventPortOffset: Int? = nil, replayPortOffset: Int? = nil,
                    model: String = "", replayTimeout: Duration = .seconds(2)) {
            self.eventEndpoints = eventEndpoints
            self.eventPortOffset = eventPortOffset
            self.replayPortOffset = replayPortOffset
            self.model = model
            self.replayTimeout = replayTimeout
        }

        /// Whether any flag asks for precise routing.
        public var isSet: Bool { !eventEndpoints.isEmpty || eventPortOffset != nil || replayPortOffset != nil }
    }

    public let service: PreciseIndexService
    public let lookup: PreciseIndexLookup
    public var store: PreciseIndexStore { lookup.store }

    /// The configuration's precise scorers (empty: no precise routing).
    public static func scorers(in config: EndpointPickerConfig) -> [PrecisePrefixCacheScorer] {
        config.plugins.compactMap { spec in
            guard spec.type == "precise-prefix-cache-scorer", case .scorer(let s)? = try? PluginRegistry.make(spec) else { return nil }
            return s as? PrecisePrefixCacheScorer
        }
    }

    /// Nil when `config` names no precise scorer. Throws ``KVRouteError`` when the engines'
    /// event endpoints cannot be told. `engines`: the front door's engine URLs
    /// (`http://host:port`; the index names engines by `host:port`, as the pool does).
    public init?(config: EndpointPickerConfig, engines: [String], options: Options, template: Llama3ChatTemplate,
                 store: PreciseIndexStore = PreciseIndexStore(), registry: PrometheusCollectorRegistry? = nil, logger: Logger) throws {
        let scorers = Self.scorers(in: config)
        guard let scorer = scorers.first else { return nil }
        let addresses = try engines.map(Self.address)
        if !options.eventEndpoints.isEmpty, options.eventEndpoints.count != addresses.count {
            throw KVRouteError(code: .invalidConfig, message: "--kv-events-endpoints names \(options.eventEndpoints.count) endpoints for \(addresses.count) engines (one per engine, in --endpoints order)")
        }
        let configuredPort = scorer.zmqEndpoint.flatMap(Self.port)
        var out: [PreciseIndexService.Engine] = []
        for (i, a) in addresses.enumerated() {
            let host = a.host.contains(":") ? "[\(a.host)]" : a.host
            let endpoint: String
            if !options.eventEndpoints.isEmpty {
                endpoint = options.eventEndpoints[i]
            } else if let offset = options.eventPortOffset {
                endpoint = "tcp://\(host):\(a.port + offset)"
            } else if let port = configuredPort {
                endpoint = "tcp://\(host):\(port)"
            } else {
                throw KVRouteError(code: .invalidConfig, message: "precise-prefix-cache-scorer needs the engines' KV event endpoints: --kv-events-endpoints, --kv-events-port-offset, or kvEventsConfig.zmqEndpoint in the configuration")
            }
            let replay = options.replayPortOffset.map { "tcp://\(host):\(a.port + $0)" }
            out.append(.init(name: a.description, endpoint: endpoint, replayEndpoint: replay, model: options.model, topic: scorer.topicFilter ?? ""))
        }
        let hashing = HashingSettings(blockSize: scorer.blockSize, hashSeed: scorer.hashSeed)
        service = PreciseIndexService(
            configuration: .init(engines: out, replayTimeout: options.replayTimeout, hashing: hashing),
            store: store, metrics: registry.map { PreciseIndexMetrics(registry: $0, engines: out.map(\.name)) }, logger: logger)
        lookup = PreciseIndexLookup(store: store, template: template, model: options.model)
    }

    /// Installs the lookup in the Scheduler's ledger: the precise scorers read it from now on.
    public func install(into scheduler: Scheduler) {
        let lookup = lookup
        scheduler.withLedger { $0.update(PrecisePrefixCacheScorer.sourceKey) { $0.lookup = lookup } }
    }

    static func address(_ url: String) throws -> EndpointAddress {
        let rest = url.range(of: "://").map { String(url[$0.upperBound...]) } ?? url
        let hostPort = rest.split(separator: "/", maxSplits: 1).first.map(String.init) ?? rest
        guard let a = EndpointAddress(hostPort) else {
            throw KVRouteError(code: .invalidConfig, message: "precise routing: \(url) is not http://host:port")
        }
        return a
    }

    /// The port of `tcp://host:port` (`*` as host included).
    static func port(_ endpoint: String) -> Int? {
        guard let colon = endpoint.lastIndex(of: ":") else { return nil }
        return Int(endpoint[endpoint.index(after: colon)...])
    }
}

extension PreciseRouting {
    /// The engines' tokenizer and chat template, as `kvroute sim --tokenizer` names them:
    /// `llama3` (the Llama-3 BPE from `file`, or found where `kvroute sim` finds it, with the
    /// Llama 3.2 template) or `bytes4` (the approximate tokenizer, compact template).
    public static func template(tokenizer: String, file: String? = nil, chatTemplateDate: String? = nil) throws -> Llama3ChatTemplate {
        switch tokenizer {
        case "bytes4":
            return Llama3ChatTemplate(tokenizer: ApproximateTokenizer(), style: .compact)
        case "llama3":
            do {
                let url = try file.map { URL(fileURLWithPath: $0) } ?? BPETokenizer.locateLlama3()
                return Llama3ChatTemplate(tokenizer: try BPETokenizer.llama3(from: url), style: .llama32(date: chatTemplateDate))
            } catch let error as TokenizerError {
                throw KVRouteError(code: .invalidConfig, message: "--tokenizer llama3: \(error.message) (or --tokenizer bytes4 when the engines use it)")
            }
        default:
            throw KVRouteError(code: .invalidConfig, message: "--tokenizer: unknown \"\(tokenizer)\" (llama3, bytes4)")
        }
    }
}
