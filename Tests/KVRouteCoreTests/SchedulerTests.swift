import Foundation
import Testing
@testable import KVRouteCore

func chat(_ id: String, system: String, user: String = "hello", session: String? = nil) -> InferenceRequest {
    InferenceRequest(requestID: id, model: "meta-llama/Llama-3.2-3B-Instruct", prompt: .messages([
        ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: user),
    ]), sessionKey: session)
}

let longSystem = String(repeating: "You are a careful consultant who plans rollouts. ", count: 80)

@Suite("Scheduler")
struct SchedulerTests {
    let endpoints = (0..<3).map { snap($0) }

    @Test("80 sequential requests of one session and prompt all go to one endpoint")
    func sticky() throws {
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        var chosen = Set<EndpointAddress>()
        for i in 0..<80 {
            let r = try s.schedule(chat("r\(i)", system: longSystem, session: "one"), candidates: endpoints)
            chosen.insert(r.primary)
            s.requestFinished(requestID: "r\(i)", servedBy: r.primary)
        }
        #expect(chosen.count == 1)
    }

    @Test("a burst of 30 distinct new prompts spreads evenly (pick-time in-flight, no herding)")
    func burst() throws {
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        var counts: [EndpointAddress: Int] = [:]
        for i in 0..<30 {
            let r = try s.schedule(chat("b\(i)", system: "Tenant \(i). " + longSystem), candidates: endpoints)
            counts[r.primary, default: 0] += 1
        }
        #expect(counts.values.sorted() == [10, 10, 10], "\(counts)")
        #expect(s.inFlight(ep(0)) + s.inFlight(ep(1)) + s.inFlight(ep(2)) == 30)
        for i in 0..<30 { s.requestFinished(requestID: "b\(i)", servedBy: nil) }
        #expect((0..<3).allSatisfy { s.inFlight(ep($0)) == 0 })
    }

    @Test("a hot prefix stays home while its endpoint has headroom, then spreads as it saturates")
    func hotPrefix() throws {
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        var order: [EndpointAddress] = []
        for i in 0..<100 {
            order.append(try s.schedule(chat("h\(i)", system: longSystem, user: "same"), candidates: endpoints).primary)
        }
        #expect(Set(order.prefix(4)).count == 1, "the first requests share the prefix holder")
        #expect(Set(order).count == 3, "the burst spilled over once the holder saturated")
    }

    @Test("distinct prompts spread over idle endpoints; a returning prompt goes home")
    func spreadAndReturn() throws {
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 2)
        var homes: [Int: EndpointAddress] = [:]
        for g in 0..<6 {
            let r = try s.schedule(chat("g\(g)", system: "Group \(g). " + longSystem), candidates: endpoints)
            homes[g] = r.primary
            s.requestFinished(requestID: "g\(g)", servedBy: r.primary)
        }
        #expect(Set(homes.values).count == 3)
        for g in 0..<6 {
            let r = try s.schedule(chat("again\(g)", system: "Group \(g). " + longSystem, user: "next"), candidates: endpoints)
            #expect(r.primary == homes[g])
            #expect(r.explanation.matchedPrefixBlocks > 0)
            s.requestFinished(requestID: "again\(g)", servedBy: r.primary)
        }
    }

    @Test("fallbacks list every other candidate; the explanation covers every endpoint")
    func fallbacksAndExplanation() throws {
        let s = try Scheduler(config: .llmdDefault, randomSeed: 3)
        let r = try s.schedule(chat("x", system: "s"), candidates: [snap(0, waiting: 5), snap(1), snap(2, kv: 0.9)])
        #expect(r.primary == ep(1))
        #expect(Set(r.fallbacks) == [ep(0), ep(2)])
        #expect(r.destinationHeaderValue.hasPrefix("10.0.0.1:8000,"))
        #expect(r.explanation.candidates.count == 3)
        let header = r.explanation.headerValue()
        #expect(header.contains("queue-scorer") && header.contains("prefix-cache-scorer"))
        #expect(header.allSatisfy { $0.isASCII })
    }

    @Test("subset hint: restricts candidates; empty or unmatched → no candidates")
    func subsetHint() throws {
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        var r = chat("h", system: "s")
        r.subsetHint = [ep(2)]
        #expect(try s.schedule(r, candidates: endpoints).primary == ep(2))
        r.requestID = "h2"
        r.subsetHint = []
        #expect(throws: KVRouteError.self) { try s.schedule(r, candidates: endpoints) }
        r.subsetHint = [ep(9)]
        #expect(throws: KVRouteError.self) { try s.schedule(r, candidates: endpoints) }
    }

    @Test("unhealthy endpoints are never picked while a healthy one exists")
    func unhealthy() throws {
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        for i in 0..<20 {
            let r = try s.schedule(chat("u\(i)", system: "s\(i)"), candidates: [snap(0, healthy: false), snap(1), snap(2, age: nil)])
            #expect(r.primary == ep(1))
            #expect(r.explanation.filteredOut.count == 2)
            s.requestFinished(requestID: "u\(i)", servedBy: r.primary)
        }
    }

    @Test("two schedulers from one config never share a prefix index")
    func isolation() throws {
        let config = EndpointPickerConfig.kvrouteDefault
        let a = try Scheduler(config: config, randomSeed: 1)
        let b = try Scheduler(config: config, randomSeed: 1)
        _ = try a.schedule(chat("1", system: longSystem), candidates: endpoints)
        #expect(a.prefixIndexSize > 0)
        #expect(b.prefixIndexSize == 0)
    }

    @Test("an endpoint that left is forgotten: its prefix index entries go with it")
    func forgetsDepartedEndpoint() throws {
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        let r = try s.schedule(chat("1", system: longSystem), candidates: endpoints)
        #expect(s.prefixIndexSize > 0)
        s.forget(endpoint: r.primary)
        #expect(s.prefixIndexSize == 0)
    }
}

@Suite("Consistent hash ring")
struct RingTests {
    @Test("stable across instances and roughly uniform", arguments: [3, 8, 16])
    func uniform(_ n: Int) {
        let endpoints = (0..<n).map { ep($0) }
        let ring = ConsistentHashRing(endpoints: endpoints, minimumRingSize: 4096)
        let again = ConsistentHashRing(endpoints: endpoints.reversed(), minimumRingSize: 4096)
        var counts: [EndpointAddress: Int] = [:]
        for k in 0..<10_000 {
            let e = ring.pick(key: "session-\(k)")!
            #expect(again.pick(key: "session-\(k)") == e)
            counts[e, default: 0] += 1
        }
        let fair = 10_000.0 / Double(n)
        for e in endpoints { #expect(abs(Double(counts[e] ?? 0) - fair) <= 0.3 * fair, "\(e): \(counts[e] ?? 0) vs \(fair)") }
    }

    @Test("removing an endpoint moves only its keys; fallbacks are distinct")
    func removal() {
        let all = (0..<4).map { ep($0) }
        let ring = ConsistentHashRing(endpoints: all)
        let smaller = ConsistentHashRing(endpoints: Array(all.dropLast()))
        for k in 0..<2_000 {
            let before = ring.pick(key: "k\(k)")!
            if before != all.last { #expect(smaller.pick(key: "k\(k)") == before) }
        }
        let picks = ring.pick(key: "x", count: 4)
        #expect(Set(picks).count == 4)
    }
}

@Suite("OpenAI request parsing")
struct ParserTests {
    @Test("chat and completions bodies")
    func valid() throws {
        let chatBody = #"{"model":"m","stream":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#
        let p = try OpenAIRequestParser.parse(body: Array(chatBody.utf8), apiKind: .chatCompletions)
        #expect(p.model == "m" && p.stream)
        #expect(p.prompt == .messages([ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "hi")]))
        let comp = try OpenAIRequestParser.parse(body: Array(#"{"model":"m","prompt":["a","b"]}"#.utf8), apiKind: .completions)
        #expect(comp.prompt == .text("ab"))
        #expect(APIKind(path: "/v1/chat/completions") == .chatCompletions)
        #expect(APIKind(path: "/v1/completions?x=1") == .completions)
        #expect(APIKind(path: "/v1/models") == nil)
    }

    @Test("invalid JSON and a missing model are errors with codes", arguments: [
        ("{", KVRouteError.Code.invalidRequest), ("[]", .invalidRequest), (#"{"messages":[]}"#, .missingModel), (#"{"model":""}"#, .missingModel),
    ])
    func invalid(_ body: String, _ code: KVRouteError.Code) {
        do {
            _ = try OpenAIRequestParser.parse(body: Array(body.utf8), apiKind: .chatCompletions)
            Issue.record("accepted \(body)")
        } catch let e as KVRouteError {
            #expect(e.code == code)
        } catch { Issue.record("\(error)") }
    }

    @Test("endpoint addresses parse and print", arguments: ["10.0.0.1:8000", "[fd00::1]:9000", "pod.ns:80"])
    func addresses(_ text: String) {
        #expect(EndpointAddress(text)?.description == text)
    }
}
