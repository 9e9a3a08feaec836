import Foundation
import Synchronization

/// Prints progress to standard output so it reads well both in a terminal and in a CI log.
///
/// In a terminal a loop's progress is one bar redrawn in place; in a log (stdout not a TTY)
/// it is a plain counter line every tenth of the loop, so no carriage returns or escape
/// codes end up in the log. Colours only in a terminal, and never when `NO_COLOR` is set.
public final class ConsoleOutput: ValidationOutput {
    let interactive: Bool
    let color: Bool
    /// Whether a progress bar is on screen and must be cleared before the next line.
    private let barShown = Mutex(false)

    /// `interactive`: stdout is a terminal (redraw a bar); `color`: ANSI colours allowed.
    public init(interactive: Bool = ConsoleOutput.stdoutIsTerminal, color: Bool = ConsoleOutput.colorAllowed) {
        self.interactive = interactive
        self.color = interactive && color
    }

    public static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) != 0 }

    /// Colours only in a terminal that is not `dumb`, and never with `NO_COLOR` set (no-color.org).
    public static var colorAllowed: Bool {
        let env = ProcessInfo.processInfo.environment
        return stdoutIsTerminal && env["NO_COLOR"].map(\.isEmpty) != false && env["TERM"] != "dumb"
    }

    public func step(_ line: String) { emit(paint("==>", "1;34") + " " + line) }
    public func detail(_ line: String) { emit("    " + line) }
    public func warning(_ line: String) { emit("    " + paint("warning:", "33") + " " + line) }

    public func progress(_ label: String, done: Int, total: Int) {
        if interactive {
            let width = 30, filled = total <= 0 ? width : min(width, width * done / total)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let finished = done >= total
            barShown.withLock { shown in
                print("\r\u{1B}[K    \(label) [\(bar)] \(done)/\(total)", terminator: finished ? "\n" : "")
                fflush(nil)
                shown = !finished
            }
        } else if done == total || (total >= 10 && done % max(1, total / 10) == 0) {
            emit("    \(label) \(done)/\(total)")
        }
    }

    func emit(_ line: String) {
        barShown.withLock { shown in
            if shown { print("\r\u{1B}[K", terminator: "") }
            shown = false
            print(line)
            fflush(nil)
        }
    }

    func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
}
