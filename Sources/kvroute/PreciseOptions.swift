import ArgumentParser
import Foundation
import KVRouteCore
import KVRouteEngineSim
import KVRoutePrecise
import KVRouteRouting
import Logging
import ServiceLifecycle

/// Precise prefix-cache routing in `kvroute gateway` and `kvroute epp`: with a configuration
/// that uses `precise-prefix-cache-scorer` (`--policy precise`, or a file), the front door
/// follows every engine's vLLM KV events over ZMQ and routes by the blocks each engine reports.
struct PreciseOptions: ParsableArguments {
    static let discussion = """
    Precise prefix-cache routing (--policy precise, or a --config using precise-prefix-cache-scorer): \
    the front door subscribes to each engine's vLLM KV events (vllm serve --kv-events-config, \
    kvroute sim --kv-events-config) and scores the prompt blocks each engine reports holding. \
    Where engine i publishes, first match wins: the i-th of --kv-events-endpoints; its host at \
    its HTTP port + --kv-events-port-offset (kvroute sim --engines N --port P with events on \
    tcp://*:E numbers both from i, so an offset of E-P fits every engine); its host at the port \
    of the configuration's kvEventsConfig.zmqEndpoint (llm-d's per-pod subscription). \
    Engines are named by their address: give them as IP addresses. The picker tokenizes as the \
    engines do (--tokenizer, --tokenizer-file, --chat-template-date as kvroute sim takes them) \
    and hashes with the scorer's blockSize and hashSeed (the engines' --block-size and \
    PYTHONHASHSEED; vLLM needs --prefix-caching-hash-algo sha256_cbor).
    """

    @Option(help: "Precise routing: each engine's KV event publisher, tcp://host:port, comma-separated, in --endpoints order.")
    var kvEventsEndpoints: [String] = []
    @Option(help: "Precise routing: an engine's KV events are at its host, HTTP port + this.") var kvEventsPortOffset: Int?
    @Option(help: "Precise routing: an engine's KV event replay socket is at its host, HTTP port + this.") var kvEventsReplayPortOffset: Int?
    @Option(help: "Precise routing: the engines' tokenizer, llama3 or bytes4 (as kvroute sim --tokenizer).") var tokenizer = "llama3"
    @Option(help: "Precise routing: a Llama-3 tokenizer.json to read instead of searching for one.") var tokenizerFile: String?
    @Option(help: "Precise routing: the engines' chat template date (kvroute sim --chat-template-date).") var chatTemplateDate: String?

    var options: PreciseRouting.Options {
        var list: [String] = []
        for entry in kvEventsEndpoints { list += entry.split(separator: ",").map { String($0) } }
        return .init(eventEndpoints: list, eventPortOffset: kvEventsPortOffset, replayPortOffset: kvEventsReplayPortOffset)
    }

    /// Checks the precise flags against `config` and loads the engines' tokenizer, before any
    /// server exists; nil when the configuration has no precise scorer.
    func prepare(config: EndpointPickerConfig, endpoints: [String], logger: Logger) throws -> Prepared? {
        let o = options
        guard !PreciseRouting.scorers(in: config).isEmpty else {
            if o.isSet { throw ValidationError("--kv-events-* need a configuration using precise-prefix-cache-scorer (--policy precise)") }
            return nil
        }
        let endpoints = endpoints.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        do {
            let template = try PreciseRouting.template(tokenizer: tokenizer, file: tokenizerFile, chatTemplateDate: chatTemplateDate)
            // The same construction `start` repeats: it throws here or nowhere.
            _ = try PreciseRouting(config: config, engines: endpoints, options: o, template: template, logger: logger)
            return Prepared(config: config, endpoints: endpoints, options: o, template: template, logger: logger)
        } catch let e as KVRouteError {
            throw ValidationError(e.message)
        }
    }

    struct Prepared {
        let config: EndpointPickerConfig
        let endpoints: [String]
        let options: PreciseRouting.Options
        let template: Llama3ChatTemplate
        let logger: Logger

        /// The precise index's service (run it in the front door's ServiceGroup), its lookup
        /// installed in `router`'s ledger and its metrics in the router's registry.
        func start(router: RequestRouter) throws -> PreciseIndexService? {
            guard let precise = try PreciseRouting(config: config, engines: endpoints, options: options, template: template,
                                                   registry: router.metrics.registry, logger: logger) else { return nil }
            precise.install(into: router.scheduler)
            return precise.service
        }
    }
}
