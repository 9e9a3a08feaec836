import Foundation
import KVRouteCore
import KVRouteDataLayer
import KVRouteGateway
import KVRouteTestSupport
import Synchronization
import Testing

@Suite("Gateway routing end to end", .serialized)
struct GatewayRoutingTests {
    @Test("the cache-hit ramp: 80 requests of one session and prompt all land on one engine, Δhit rate ≥ 95 %")
    func ramp() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withGateway(endpoints: [urls.joined(separator: ",")]) { _, gw in
                let body = chatBody(system: systemPrompt(group: 0, tokens: 1000), user: "Plan the rollout.", maxTokens: 16)
                let headers = [("x-session-id", "ramp-session"), ("session-id", "ramp-session")]
                _ = try await TestHTTP.postJSON(gw + "/v1/chat/completions", body, headers: headers)
                let (rate, _, hosts) = try await deltaHitRate(urls) {
                    try await Self.send(80, to: gw, system: systemPrompt(group: 0, tokens: 1000), headers: headers)
                }
                print("ramp: hosts \(hosts), delta hit rate \(String(format: "%.3f", rate))")
                #expect(hosts.count == 1)
                #expect(hosts.values.first == 80)
                #expect(rate >= 0.95)
            }
        }
    }

    /// Sends `count` identical requests one after another; returns requests per upstream host.
    static func send(_ count: Int, to gw: String, system: String, headers: [(String, String)]) async throws -> [String: Int] {
        var hosts: [String: Int] = [:]
        for _ in 0..<count {
            let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: system, user: "Plan the rollout.", maxTokens: 16), headers: headers)
            #expect(r.status == 200)
            hosts[r.headers.first(name: "x-upstream-host") ?? "?", default: 0] += 1
        }
        return hosts
    }

    /// 64 sessions over 8 shared ~2k-token system prompts, all concurrent, 3 turns each,
    /// on engines whose KV caches hold about four of the eight prompts each (500 blocks of 16
    /// tokens): the cluster can keep every prompt cached only if each lives on one engine.
    static func sharedPromptRun(config: EndpointPickerConfig) async throws -> (hitRate: Double, maxOverMean: Double) {
        try await withSimCluster(engines: 3, engine: testEngineConfiguration(numGPUBlocks: 500, maxNumSeqs: 64)) { _, urls in
            try await withGateway(endpoints: urls, config: config) { _, gw in
                let prompts = (0..<8).map { systemPrompt(group: $0, tokens: 2000) }
                let (rate, _, perEngine) = try await deltaHitRate(urls) { () -> [String: Int] in
                    var perEngine: [String: Int] = [:]
                    let hosts = try await withThrowingTaskGroup(of: [String].self) { g in
                        for s in 0..<64 {
                            g.addTask {
                                var seen: [String] = []
                                for turn in 0..<3 {
                                    let body = chatBody(system: prompts[s % 8], user: "Session \(s) question \(turn): what next?", maxTokens: 16)
                                    let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", body, headers: [("x-session-id", "s\(s)")])
                                    #expect(r.status == 200)
                                    seen.append(r.headers.first(name: "x-upstream-host") ?? "?")
                                }
                                return seen
                            }
                        }
                        return try await g.reduce(into: [String]()) { $0 += $1 }
                    }
                    for h in hosts { perEngine[h, default: 0] += 1 }
                    return perEngine
                }
                let counts = perEngine.values.map(Double.init)
                let mean = counts.reduce(0, +) / 3
                return (rate, (counts.max() ?? 0) / mean)
            }
        }
    }

    @Test("64 sessions over 8 shared prompts: hit rate ≥ 2× round-robin, busiest engine ≤ 1.5× the mean")
    func sharedPrompts() async throws {
        let kv = try await Self.sharedPromptRun(config: .kvrouteDefault)
        let rr = try await Self.sharedPromptRun(config: .roundRobin)
        print(String(format: "shared prompts: kvroute hit rate %.3f (busiest/mean %.2f), round-robin %.3f (busiest/mean %.2f), ratio %.2f×",
                     kv.hitRate, kv.maxOverMean, rr.hitRate, rr.maxOverMean, kv.hitRate / max(rr.hitRate, 1e-9)))
        #expect(kv.hitRate >= 2 * rr.hitRate)
        #expect(kv.maxOverMean <= 1.5)
    }

    @Test("picker off: each of 20 sessions stays on one engine (consistent hash on x-session-id)")
    func pickerOff() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withGateway(endpoints: urls, config: .consistentHash) { _, gw in
                var stickiness: [Double] = []
                var used = Set<String>()
                for s in 0..<20 {
                    var hosts: [String: Int] = [:]
                    for i in 0..<10 {
                        // Alternate the three ways of naming a session: all must normalize alike.
                        let headers: [(String, String)] = switch i % 3 {
                        case 0: [("x-session-id", "sess-\(s)")]
                        case 1: [("session-id", "sess-\(s)")]
                        default: [("cookie", "theme=dark; session-id=sess-\(s)")]
                        }
                        let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "short", user: "q\(i)", maxTokens: 1), headers: headers)
                        #expect(r.status == 200)
                        hosts[r.headers.first(name: "x-upstream-host") ?? "?", default: 0] += 1
                    }
                    stickiness.append(Double(hosts.values.max() ?? 0) / 10)
                    used.formUnion(hosts.keys)
                }
                print("picker off: per-session stickiness min \(stickiness.min() ?? 0), engines used \(used.count)")
                #expect(stickiness.allSatisfy { $0 >= 0.99 })
                #expect(used.count > 1)
            }
        }
    }

    @Test("a client-sent x-gateway-destination-endpoint changes nothing")
    func forgedDestination() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withGateway(endpoints: urls) { _, gw in
                let body = chatBody(system: systemPrompt(group: 1, tokens: 300), user: "hi")
                let plain = try await TestHTTP.postJSON(gw + "/v1/chat/completions", body, headers: [("x-session-id", "forge")])
                let forged = try await TestHTTP.postJSON(gw + "/v1/chat/completions", body, headers: [
                    ("x-session-id", "forge"), ("x-gateway-destination-endpoint", "10.0.0.1:80"),
                    ("x-gateway-destination-endpoint-subset", "10.0.0.1:80"),
                ])
                #expect(plain.status == 200)
                #expect(forged.status == 200)
                let host = forged.headers.first(name: "x-upstream-host") ?? ""
                #expect(host == plain.headers.first(name: "x-upstream-host"))
                #expect(urls.contains("http://" + host))
            }
        }
    }

    @Test("the decision explains itself when the operator asks")
    func explanation() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withGateway(endpoints: urls, explainSecret: "operator-secret-0123456789") { _, gw in
                let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "s", user: "u"), headers: [("x-kvroute-explain", "operator-secret-0123456789")])
                let header = try #require(r.headers.first(name: "x-kvroute-decision"))
                #expect(header.contains("prefix"))
                let plain = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "s", user: "u"))
                #expect(plain.headers.first(name: "x-kvroute-decision") == nil)
            }
        }
    }
}

@Suite("Endpoint discovery")
struct DiscoveryTests {
    @Test("a DNS name is resolved to its addresses (IPv4 preferred) and routed to")
    func dnsEndpoint() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            let port = urls[0].split(separator: ":").last!
            try await withGateway(endpoints: ["http://localhost:\(port)"]) { gateway, gw in
                #expect(gateway.pool.members.map(\.address.description) == ["127.0.0.1:\(port)"])
                let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "s", user: "u"))
                #expect(r.status == 200)
                #expect(r.headers.first(name: "x-upstream-host") == "127.0.0.1:\(port)")
            }
        }
    }
}
