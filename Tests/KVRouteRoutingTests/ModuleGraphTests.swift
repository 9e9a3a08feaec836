import Foundation
import Testing

/// The package's module graph, read from Package.swift and the sources' `import` lines:
/// dependencies point inward (executable → adapters → routing → core), the two front doors
/// never depend on each other, and the decision core reads no files and no clock.
@Suite("Module graph")
struct ModuleGraphTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let adapters = ["KVRouteGateway", "KVRouteExtProc"]

    /// Each target's package-internal dependencies (the quoted names in its `dependencies:`
    /// list that are not `.product(name:package:)` arguments).
    static func targetDependencies() throws -> [String: Set<String>] {
        let text = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        var result: [String: Set<String>] = [:]
        let starts = text.ranges(of: #/\.(target|executableTarget|testTarget)\(\s*name:\s*"([^"]+)"/#)
        for r in starts {
            let name = String(text[r].split(separator: "\"")[1])
            let rest = text[r.upperBound...]
            guard let deps = rest.firstRange(of: "dependencies: ["), rest[..<deps.lowerBound].firstRange(of: ".target(") == nil else {
                result[name] = []
                continue
            }
            var depth = 1, i = deps.upperBound
            while depth > 0, i < rest.endIndex {
                if rest[i] == "[" { depth += 1 } else if rest[i] == "]" { depth -= 1 }
                i = rest.index(after: i)
            }
            let list = String(rest[deps.upperBound..<i]).replacing(#/\.product\([^)]*\)/#, with: "")
            result[name] = Set(list.matches(of: #/"([^"]+)"/#).map { String($0.output.1) })
        }
        return result
    }

    /// The modules a target's sources import.
    static func imports(_ target: String) throws -> Set<String> {
        var out: Set<String> = []
        for file in try swiftFiles(target) {
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
                if let m = line.firstMatch(of: #/^\s*(?:@testable\s+|@_exported\s+)?(?:public\s+|package\s+|internal\s+)?import\s+(?:struct\s+|class\s+|enum\s+|func\s+)?([A-Za-z0-9_]+)/#) {
                    out.insert(String(m.output.1))
                }
            }
        }
        return out
    }

    static func swiftFiles(_ target: String) throws -> [URL] {
        let dir = root.appendingPathComponent("Sources").appendingPathComponent(target)
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else { return [] }
        return e.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
    }

    @Test("Package.swift: no adapter depends on another; the routing module and the core depend on no adapter")
    func packageDependencies() throws {
        let deps = try Self.targetDependencies()
        for a in Self.adapters {
            let d = try #require(deps[a], "\(a) is not a target")
            #expect(d.isDisjoint(with: Self.adapters), "\(a) depends on \(d.intersection(Self.adapters))")
            #expect(d.contains("KVRouteRouting"), "\(a) should reach the core through KVRouteRouting")
        }
        #expect(try #require(deps["KVRouteRouting"]).isDisjoint(with: Self.adapters))
        #expect(try #require(deps["KVRouteCore"]).isEmpty, "the core depends on \(deps["KVRouteCore"] ?? [])")
    }

    @Test("imports: no adapter imports another; the core imports no kvroute module")
    func importLines() throws {
        for a in Self.adapters {
            let imported = try Self.imports(a)
            #expect(!imported.isEmpty)
            #expect(imported.isDisjoint(with: Self.adapters.filter { $0 != a }), "\(a) imports \(imported.intersection(Self.adapters))")
        }
        #expect(try Self.imports("KVRouteRouting").isDisjoint(with: Self.adapters))
        let core = try Self.imports("KVRouteCore")
        #expect(core.filter { $0.hasPrefix("KVRoute") }.isEmpty, "the core imports \(core)")
    }

    @Test("the decision core reads no files and no clock")
    func coreHasNoIO() throws {
        let forbidden = ["FileManager", "Date()", "ContinuousClock.now", "SuspendingClock.now", "contentsOfFile", "String(contentsOf", "Data(contentsOf", "fopen", "FileHandle"]
        let files = try Self.swiftFiles("KVRouteCore")
        #expect(files.count > 5)
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for word in forbidden {
                #expect(!text.contains(word), "\(file.lastPathComponent) uses \(word)")
            }
        }
    }
}
