import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import KVRouteEngineSim

extension SimEngineServer {
    /// Serves one completion: parse, check, inject faults, run on the engine, answer as JSON
    /// or as SSE chunks written as tokens come out of engine steps.
    func complete(_ req: Request, _ ctx: SimRequestContext, kind: CompletionRequest.Kind) async throws -> Response {
        let body = try await readBody(req, ctx)
        let parsed = try CompletionRequest.parse(body, kind: kind)
        let lora = runner.configuration.loraAdapter(named: parsed.model)
        guard parsed.model == model || lora != nil else {
            throw OpenAIError(.notFound, "The model `\(parsed.model)` does not exist.", param: "model")
        }
        if let forced = req.headers[Self.failHeader], let status = Int(forced), (400..<600).contains(status) {
            throw OpenAIError(HTTPResponse.Status(code: status), "failure injected by \(Self.failHeader.rawName) header")
        }
        let settings = faults.settings
        guard settings.healthy else { throw OpenAIError(.serviceUnavailable, "engine is marked unhealthy") }
        var stall: Duration?? = nil
        switch faults.drawFault() {
        case .fail(let status)?: throw OpenAIError(HTTPResponse.Status(code: status), "failure injected at rate \(settings.failRate)")
        case .drop?: return await dropConnection(ctx)
        case .invalidJSON?: return invalidJSONResponse(stream: parsed.stream)
        case .truncate?: return truncatedResponse(ctx, stream: parsed.stream, kind: kind)
        case .stall(let d)?: stall = .some(d)
        case nil: break
        }

        let prompt = promptTokens(parsed.prompt)
        let maxLen = runner.configuration.maxModelLen
        guard prompt.count < maxLen else {
            throw OpenAIError.badRequest("This model's maximum context length is \(maxLen) tokens. However, your request has \(prompt.count) input tokens. Please reduce the length of the input messages.", param: "messages")
        }
        let maxTokens = parsed.maxTokens ?? min(runner.configuration.defaultMaxTokens, maxLen - prompt.count)
        let events: AsyncStream<EngineEvent>
        do {
            events = try runner.submit(EngineRequest(
                promptTokens: prompt, maxTokens: maxTokens, lora: lora, cacheSalt: parsed.cacheSalt,
                ignoreEOS: parsed.ignoreEOS, minTokens: parsed.minTokens))
        } catch {
            switch error.code {
            case .shuttingDown: throw OpenAIError(.serviceUnavailable, error.message)
            default: throw OpenAIError.badRequest(error.message, param: "max_tokens")
            }
        }
        if settings.extraLatencyMs > 0 {
            try await Task.sleep(for: .milliseconds(settings.extraLatencyMs))
        }
        let id = (kind == .chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        var headers: HTTPFields = [Self.podHeader: configuration.podName]
        let details = configuration.enablePromptTokensDetails
        // The end-of-sequence token counts as output but is never shown (a special token).
        let eos = runner.configuration.endOfSequenceProbability > 0 ? runner.configuration.endOfSequenceToken : nil
        ctx.logger.debug("completion", metadata: ["request.id": "\(id)", "prompt_tokens": "\(prompt.count)"])

        guard parsed.stream else {
            var output: [UInt32] = []
            for await event in events {
                switch event {
                case .token(let t, _): if t != eos { output.append(t) }
                case .finished(let f):
                    headers[.contentType] = "application/json"
                    let usage = CompletionResponse.Usage(promptTokens: f.promptTokens, completionTokens: f.completionTokens, cachedTokens: details ? f.cachedTokens : nil)
                    let out = CompletionResponse.full(kind: kind, id: id, created: created, model: parsed.model,
                                                      text: template.tokenizer.decode(output), finish: f.reason, usage: usage)
                    return stalled(Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: out))), stall)
                }
            }
            throw OpenAIError(.serviceUnavailable, "the engine stopped before the request finished")
        }

        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let tokenizer = template.tokenizer
        // Answers name the model the request named (an adapter's name for a LoRA request).
        let model = parsed.model, created = self.created
        return stalled(Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var first = true
            var finished = false
            if kind == .chat {
                // vLLM opens a chat stream with the assistant role before any token.
                try await writer.write(ByteBuffer(string: CompletionResponse.chunk(
                    kind: kind, id: id, created: created, model: model, text: "", role: true, finish: nil)))
            }
            var pending: UInt32?
            for await event in events {
                switch event {
                case .token(let t, _):
                    if let p = pending {
                        try await writer.write(ByteBuffer(string: CompletionResponse.chunk(
                            kind: kind, id: id, created: created, model: model, text: Self.visibleText(p, eos: eos, tokenizer),
                            role: false, finish: nil)))
                    }
                    pending = t
                    first = false
                case .finished(let f):
                    // The last token travels with the finish reason, as vLLM sends it.
                    try await writer.write(ByteBuffer(string: CompletionResponse.chunk(
                        kind: kind, id: id, created: created, model: model, text: pending.map { Self.visibleText($0, eos: eos, tokenizer) } ?? "",
                        role: false, finish: f.reason)))
                    pending = nil
                    if parsed.includeUsage {
                        let usage = CompletionResponse.Usage(promptTokens: f.promptTokens, completionTokens: f.completionTokens, cachedTokens: details ? f.cachedTokens : nil)
                        try await writer.write(ByteBuffer(string: CompletionResponse.usageChunk(kind: kind, id: id, created: created, model: model, usage: usage)))
                    }
                    finished = true
                }
            }
            _ = first
            if !finished {
                let err = OpenAIError(.serviceUnavailable, "the engine stopped before the request finished")
                try await writer.write(ByteBuffer(string: "data: \(String(decoding: err.body, as: UTF8.self))\n\n"))
            }
            try await writer.write(ByteBuffer(string: CompletionResponse.done))
            try await writer.finish(nil)
        }), stall)
    }

    /// A token's text; the end-of-sequence token has none.
    static func visibleText(_ token: UInt32, eos: UInt32?, _ tokenizer: some Tokenizer) -> String {
        token == eos ? "" : tokenizer.decode([token])
    }

    func promptTokens(_ prompt: CompletionRequest.Prompt) -> [UInt32] {
        switch prompt {
        case .messages(let turns): template.render(turns)
        case .text(let s): template.renderCompletion(s)
        case .tokens(let ids): ids
        }
    }

    /// vLLM's `/tokenize`: `{"prompt"}` or `{"messages", "add_generation_prompt"}`.
    func tokenize(_ req: Request, _ ctx: SimRequestContext) async throws -> Response {
        let body = try await readBody(req, ctx)
        guard let json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw OpenAIError.badRequest("Invalid JSON in request body")
        }
        if let m = json["model"] as? String, m != model, runner.configuration.loraAdapter(named: m) == nil {
            throw OpenAIError(.notFound, "The model `\(m)` does not exist.", param: "model")
        }
        let tokens: [UInt32]
        if json["messages"] != nil {
            var copy = json
            copy["model"] = model
            let parsed = try CompletionRequest.parse(try JSONSerialization.data(withJSONObject: copy), kind: .chat)
            guard case .messages(let turns) = parsed.prompt else { throw OpenAIError.badRequest("messages required") }
            tokens = template.render(turns, addGenerationPrompt: (json["add_generation_prompt"] as? Bool) ?? true)
        } else if let p = json["prompt"] as? String {
            tokens = (json["add_special_tokens"] as? Bool) == false ? template.tokenizer.encode(p) : template.renderCompletion(p)
        } else {
            throw OpenAIError.badRequest("Field required: prompt or messages", param: "prompt")
        }
        return self.json(["count": tokens.count, "max_model_len": runner.configuration.maxModelLen, "tokens": tokens.map { Int($0) }])
    }
}
