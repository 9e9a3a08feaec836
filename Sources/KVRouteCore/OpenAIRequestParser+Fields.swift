extension OpenAIRequestParser {
    /// A field as the body has it: missing, of the type routing reads, or something else.
    /// When a name repeats, the last one counts (as in Foundation's dictionaries).
    enum Field<Value: Equatable>: Equatable {
        case absent
        case value(Value)
        case otherType
    }

    /// What one pass over the body collects.
    struct Fields {
        var isObject = true
        var model = Field<String>.absent
        var stream = false
        var messages = Field<[ChatMessage]>.absent
        var prompt = Field<String>.absent
        var input = ""
        var instructions = ""

        init(_ s: inout JSONScanner, apiKind: APIKind) throws(JSONSyntaxError) {
            s.skipByteOrderMark()
            switch try s.next() {
            case UInt8(ascii: "{"): break
            case UInt8(ascii: "["):
                try s.skipValue()
                try s.finish()
                isObject = false
                return
            default: throw JSONSyntaxError(.unexpectedCharacter, at: s.index)
            }
            try s.enterContainer()
            var first = true
            while let key = try s.nextMember(&first) {
                if s.key(key, is: "model") {
                    model = try s.next() == UInt8(ascii: "\"") ? .value(s.readString()) : Self.skip(&s)
                } else if s.key(key, is: "stream") {
                    stream = try Self.readStream(&s)
                } else if apiKind == .chatCompletions, s.key(key, is: "messages") {
                    messages = try s.next() == UInt8(ascii: "[") ? .value(Self.readMessages(&s)) : Self.skip(&s)
                } else if apiKind == .completions, s.key(key, is: "prompt") {
                    switch try s.next() {
                    case UInt8(ascii: "\""): prompt = .value(try s.readString())
                    case UInt8(ascii: "["): prompt = .value(try Self.readPromptList(&s))
                    default: prompt = try Self.skip(&s)
                    }
                } else if apiKind == .responses || apiKind == .embeddings, s.key(key, is: "input") {
                    input = ""
                    try Self.readText(&s, into: &input)
                } else if apiKind == .responses, s.key(key, is: "instructions") {
                    instructions = ""
                    try Self.readText(&s, into: &instructions)
                } else {
                    try s.skipValue()
                }
            }
            try s.finish()
        }

        private static func skip<Value>(_ s: inout JSONScanner) throws(JSONSyntaxError) -> Field<Value> {
            try s.skipValue()
            return .otherType
        }

        /// `true`, or a number equal to 1 (Foundation's NSNumber read 1 and 1.0 as true);
        /// anything else is false.
        private static func readStream(_ s: inout JSONScanner) throws(JSONSyntaxError) -> Bool {
            switch try s.next() {
            case UInt8(ascii: "t"), UInt8(ascii: "f"): return try s.readBool() ?? false
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try Double(s.readNumber()) == 1
            default:
                try s.skipValue()
                return false
            }
        }

        /// Chat messages: each object's role and text; other elements are dropped.
        private static func readMessages(_ s: inout JSONScanner) throws(JSONSyntaxError) -> [ChatMessage] {
            var messages: [ChatMessage] = []
            try s.enterContainer()
            var first = true
            while try s.nextElement(&first) {
                guard try s.next() == UInt8(ascii: "{") else {
                    try s.skipValue()
                    continue
                }
                var role = "", content = ""
                try s.enterContainer()
                var firstMember = true
                while let key = try s.nextMember(&firstMember) {
                    if s.key(key, is: "role") {
                        if try s.next() == UInt8(ascii: "\"") { role = try s.readString() } else { role = ""; try s.skipValue() }
                    } else if s.key(key, is: "content") {
                        content = ""
                        try readText(&s, into: &content)
                    } else {
                        try s.skipValue()
                    }
                }
                messages.append(ChatMessage(role: role, content: content))
            }
            return messages
        }

        /// A completions prompt list: strings as they are, numbers and booleans as a word
        /// each (token ids), anything else as nothing.
        private static func readPromptList(_ s: inout JSONScanner) throws(JSONSyntaxError) -> String {
            var text = ""
            try s.enterContainer()
            var first = true
            while try s.nextElement(&first) {
                switch try s.next() {
                case UInt8(ascii: "\""): text += try s.readString()
                case UInt8(ascii: "t"), UInt8(ascii: "f"): text += try s.readBool() == true ? "1 " : "0 "
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    let number = try s.readNumber()
                    text += number == "-0" ? "0" : number
                    text += " "
                default: try s.skipValue()
                }
            }
            return text
        }

        /// Text of a content value: a string, or the text parts of a list (a part is a
        /// string, or an object's `text` string, else the text of its `content`).
        static func readText(_ s: inout JSONScanner, into text: inout String) throws(JSONSyntaxError) {
            switch try s.next() {
            case UInt8(ascii: "\""): text += try s.readString()
            case UInt8(ascii: "["):
                try s.enterContainer()
                var first = true
                while try s.nextElement(&first) {
                    switch try s.next() {
                    case UInt8(ascii: "\""): text += try s.readString()
                    case UInt8(ascii: "{"): text += try readPart(&s)
                    default: try s.skipValue()
                    }
                }
            default: try s.skipValue()
            }
        }

        private static func readPart(_ s: inout JSONScanner) throws(JSONSyntaxError) -> String {
            var partText: String? = nil, content: String? = nil
            try s.enterContainer()
            var first = true
            while let key = try s.nextMember(&first) {
                if s.key(key, is: "text") {
                    if try s.next() == UInt8(ascii: "\"") { partText = try s.readString() } else { partText = nil; try s.skipValue() }
                } else if s.key(key, is: "content") {
                    var inner = ""
                    try readText(&s, into: &inner)
                    content = inner
                } else {
                    try s.skipValue()
                }
            }
            return partText ?? content ?? ""
        }
    }
}
