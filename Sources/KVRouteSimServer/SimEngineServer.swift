import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import KVRouteEngineSim
import KVRouteKVEvents
import Logging

/// One simulated engine behind vLLM's OpenAI-compatible HTTP API.
///
/// Routes: `POST /v1/chat/completions`, `POST /v1/completions` (JSON or SSE),
/// `GET /v1/models`, `GET /health`, `GET /metrics`, `POST /reset_prefix_cache`,
/// `POST /tokenize`, the worker-info routes routers probe (`/model_info`, `/server_info`,
/// `/version`), `GET|POST /admin/faults` for failure injection and `GET /debug/kv_blocks`
/// (the cached block hashes, to check an index built from the engine's KV events), and
/// `POST /admin/kv_events/lose?count=N` (the next N event batches are kept for replay but not
/// sent, to test a subscriber's gap handling).
public struct SimEngineServer: Sendable {
    public struct Configuration: Sendable {
        /// Name sent in `x-inference-pod` (a pod name in Kubernetes).
        public var podName: String
        /// Largest request body accepted, in bytes.
        public var maxBodyBytes: Int
        public var faults: FaultSettings
        /// How prompts become tokens: `kvroute sim` serves Llama-3's BPE with the Llama 3.2
        /// template (vLLM's token counts); the default here is the 4-byte tokenizer with the
        /// compact template, which needs no tokenizer file.
        public var template: Llama3ChatTemplate
        /// vLLM's `--enable-prompt-tokens-details`: `usage.prompt_tokens_details.cached_tokens`
        /// reports the prefix-cache hit. Off by default, as in vLLM.
        public var enablePromptTokensDetails: Bool

        public init(podName: String, maxBodyBytes: Int = 8 << 20, faults: FaultSettings = FaultSettings(),
                    template: Llama3ChatTemplate = Llama3ChatTemplate(), enablePromptTokensDetails: Bool = false) {
            self.podName = podName
            self.enablePromptTokensDetails = enablePromptTokensDetails
            self.maxBodyBytes = maxBodyBytes
            self.faults = faults
            self.template = template
        }
    }

    public static let podHeader = HTTPField.Name("x-inference-pod")!
    public static let failHeader = HTTPField.Name("x-sim-fail-status")!

    public let runner: EngineRunner
    public let configuration: Configuration
    /// The publisher of this engine's KV events, when it publishes them.
    public let kvEvents: KVEventPublisher?
    let faults: FaultInjector
    var template: Llama3ChatTemplate { configuration.template }
    let created = Int(Date().timeIntervalSince1970)

    public init(runner: EngineRunner, configuration: Configuration, kvEvents: KVEventPublisher? = nil) {
        self.runner = runner
        self.configuration = configuration
        self.kvEvents = kvEvents
        self.faults = FaultInjector(settings: configuration.faults, seed: runner.configuration.seed)
        runner.setSlowdown(configuration.faults.slowdown)
    }

    public var model: String { runner.configuration.model }

    /// Current failure-injection settings.
    public var faultSettings: FaultSettings {
        get { faults.settings }
        nonmutating set {
            faults.settings = newValue
            runner.setSlowdown(newValue.slowdown)
        }
    }

    /// The HTTP routes of this engine.
    public func makeRouter() -> Router<SimRequestContext> {
        let router = Router(context: SimRequestContext.self)
        router.add(middleware: OpenAIErrorMiddleware())
        router.post("/v1/chat/completions") { req, ctx in try await self.complete(req, ctx, kind: .chat) }
        router.post("/v1/completions") { req, ctx in try await self.complete(req, ctx, kind: .completion) }
        router.get("/v1/models") { _, _ in self.json(self.modelsJSON()) }
        router.get("/health") { _, _ -> Response in
            guard self.faults.settings.healthy else { throw OpenAIError(.serviceUnavailable, "engine is marked unhealthy") }
            return Response(status: .ok)
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: self.faults.metricsText(self.runner.metrics.render()))))
        }
        // vLLM 0.32 (a development route there, VLLM_SERVER_DEV_MODE=1): 200 with
        // {"success": false} while requests hold blocks, unless ?reset_running_requests=true.
        router.post("/reset_prefix_cache") { req, _ -> Response in
            let preempt = req.uri.queryParameters.get("reset_running_requests").map { ["true", "1"].contains($0.lowercased()) } ?? false
            return self.json(["success": self.runner.resetPrefixCache(resetRunningRequests: preempt)])
        }
        router.post("/tokenize") { req, ctx in try await self.tokenize(req, ctx) }
        router.get("/debug/kv_blocks") { _, _ in try self.kvBlocksResponse() }
        // A fault for gap handling: `?count=N` batches are numbered and kept for replay, not sent.
        router.post("/admin/kv_events/lose") { req, _ -> Response in
            guard let kvEvents = self.kvEvents else { throw OpenAIError(.notFound, "this engine publishes no KV events") }
            guard let count = req.uri.queryParameters.get("count", as: Int.self), (0...1_000_000).contains(count) else {
                throw OpenAIError.badRequest("count: an integer in 0...1000000 required", param: "count")
            }
            kvEvents.loseNext(count)
            return Response(status: .ok)
        }
        router.get("/model_info") { _, _ in self.json(self.modelInfoJSON()) }
        router.get("/get_model_info") { _, _ in self.json(self.modelInfoJSON()) }
        router.get("/server_info") { _, _ in self.json(self.serverInfoJSON()) }
        router.get("/get_server_info") { _, _ in self.json(self.serverInfoJSON()) }
        router.get("/version") { _, _ in self.json(["version": "kvroute-sim"]) }
        router.get("/admin/faults") { _, _ in try self.faultsResponse() }
        router.post("/admin/faults") { req, ctx in try await self.updateFaults(req, ctx) }
        return router
    }

    /// An application serving this engine on `host:port` (port 0 picks a free one;
    /// `onRunning` receives the bound port).
    public func makeApplication(host: String, port: Int, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    // MARK: helpers

    func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func readBody(_ req: Request, _ ctx: SimRequestContext) async throws -> Data {
        if let type = req.headers[.contentType], !type.lowercased().contains("json") {
            throw OpenAIError(.unsupportedMediaType, "Unsupported Content-Type \"\(type)\"; send application/json")
        }
        if let length = req.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodyBytes {
            throw OpenAIError(.contentTooLarge, "Request body of \(length) bytes exceeds the limit of \(configuration.maxBodyBytes) bytes")
        }
        do {
            var buffer = try await req.body.collect(upTo: configuration.maxBodyBytes)
            return buffer.readData(length: buffer.readableBytes) ?? Data()
        } catch is NIOTooManyBytesError {
            throw OpenAIError(.contentTooLarge, "Request body exceeds the limit of \(configuration.maxBodyBytes) bytes")
        }
    }

    func modelsJSON() -> [String: Any] {
        let base: [String: Any] = [
            "id": model, "object": "model", "created": created, "owned_by": "vllm", "root": model,
            "parent": NSNull(), "max_model_len": runner.configuration.maxModelLen, "permission": [Any](),
        ]
        // vLLM lists each LoRA adapter after the base model, with the base as its parent.
        let adapters: [[String: Any]] = runner.configuration.loraAdapters.map { name in
            ["id": name, "object": "model", "created": created, "owned_by": "vllm", "root": name,
             "parent": model, "max_model_len": runner.configuration.maxModelLen, "permission": [Any]()]
        }
        return ["object": "list", "data": [base] + adapters]
    }

    /// `GET /debug/kv_blocks`: the low 64 bits of every block hash a request could hit now
    /// (blocks in use and free blocks not yet reused), sorted — the set an index built from
    /// this engine's KV events must hold.
    func kvBlocksResponse() throws -> Response {
        let (hashes, physical) = runner.cachedBlockHashes()
        let body = KVBlocksBody(
            blockSize: runner.configuration.blockSize, physicalBlocks: physical, hashes: hashes.sorted(),
            kvEventsEndpoint: kvEvents?.boundEndpoint, kvEventsReplayEndpoint: kvEvents?.boundReplayEndpoint)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(body))))
    }

    func modelInfoJSON() -> [String: Any] {
        ["model_path": model, "tokenizer_path": model, "is_generation": true, "served_model_name": model]
    }

    func serverInfoJSON() -> [String: Any] {
        let c = runner.configuration
        return [
            "model_path": model, "served_model_name": model, "block_size": c.blockSize,
            "num_gpu_blocks": c.numGPUBlocks, "max_num_seqs": c.maxNumSeqs, "max_model_len": c.maxModelLen,
            "max_num_batched_tokens": c.maxNumBatchedTokens, "enable_prefix_caching": c.enablePrefixCaching,
            "pod_name": configuration.podName, "version": "kvroute-sim",
        ]
    }

    func faultsResponse() throws -> Response {
        let data = try JSONEncoder().encode(faults.settings)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Applies the fields present in the body over the current settings.
    func updateFaults(_ req: Request, _ ctx: SimRequestContext) async throws -> Response {
        let body = try await readBody(req, ctx)
        guard let patch = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw OpenAIError.badRequest("Invalid JSON in request body: expected an object")
        }
        let current = try JSONSerialization.jsonObject(with: JSONEncoder().encode(faults.settings)) as? [String: Any] ?? [:]
        let merged = current.merging(patch) { _, new in new }
        let settings: FaultSettings
        do {
            settings = try JSONDecoder().decode(FaultSettings.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch {
            throw OpenAIError.badRequest("Invalid fault settings: \(error)")
        }
        try settings.validate()
        faultSettings = settings
        return try faultsResponse()
    }
}

/// The body of `GET /debug/kv_blocks`.
struct KVBlocksBody: Encodable {
    var blockSize: Int
    /// Physical blocks holding a cached hash (two blocks may hold the same one).
    var physicalBlocks: Int
    var hashes: [UInt64]
    var kvEventsEndpoint: String?
    var kvEventsReplayEndpoint: String?
}
