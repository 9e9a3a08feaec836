import Foundation
import KVRouteTestSupport
import Testing
@testable import KVRouteCore

/// The scanner and Foundation's JSONSerialization on a seeded corpus of generated request
/// bodies (every kind, written with varied whitespace and escapes) and their damaged
/// copies: they agree on every field routing reads and on every refusal, except where
/// ``RequestParserDifferential/Difference`` says why. `scripts/fuzz.sh` reruns it with
/// fresh seeds and more cases.
@Suite("Fuzz: request parser against Foundation")
struct FuzzRequestParserDifferentialTests {
    @Test("generated and damaged OpenAI bodies: same fields, same refusals")
    func generatedBodies() {
        var agreedParsed = 0, agreedRefused = 0
        var differences: [RequestParserDifferential.Difference: Int] = [:]
        let ran = Fuzz.run("openai-differential", cases: 600) { r in
            var writer = VariedJSONWriter(r: FuzzRandom(seed: r.next()))
            let body = writer.write(OpenAIBodyGenerator.body(&r))
            return r.chance(0.25) ? FuzzText.damage(body, &r) : body
        } check: { body in
            for kind in APIKind.allCases {
                let d = RequestParserDifferential(body, kind)
                d.check(body, kind)
                if let difference = d.difference {
                    differences[difference, default: 0] += 1
                } else if case .parsed = d.ours {
                    agreedParsed += 1
                } else {
                    agreedRefused += 1
                }
            }
        }
        print("openai-differential: \(ran) bodies × 4 kinds: \(agreedParsed) read alike, \(agreedRefused) refused alike, documented differences \(differences)")
        #expect(agreedParsed > ran, "the corpus must mostly be bodies both read")
        #expect(agreedRefused > ran / 10, "and some both refuse")
    }

    @Test("random strings round-trip through every escape style")
    func strings() throws {
        Fuzz.run("openai-differential-strings", cases: 1_000) { r in
            var writer = VariedJSONWriter(r: FuzzRandom(seed: r.next()))
            let text = FuzzText.string(&r)
            var body = Array(#"{"model":"m","messages":[{"role":"user","content":"#.utf8)
            writer.string(text, into: &body)
            body += Array("}]}".utf8)
            return body
        } check: { body in
            RequestParserDifferential(body, .chatCompletions).check(body, .chatCompletions)
            #expect(throws: Never.self) { try OpenAIRequestParser.parse(body: body, apiKind: .chatCompletions) }
        }
    }
}
