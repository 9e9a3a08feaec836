import Testing
@testable import KVRouteEngineSim

@Suite("Tokenizer and chat template")
struct TokenizerTests {
    @Test("one token per 4 bytes of text")
    func fourBytes() {
        let t = ApproximateTokenizer()
        #expect(t.encode("").isEmpty)
        #expect(t.encode("abcd").count == 1)
        #expect(t.encode("abcde").count == 2)
        #expect(t.encode(String(repeating: "x", count: 4000)).count == 1000)
        #expect(t.encode("hello world") == t.encode("hello world"))
    }

    @Test("generated words re-encode to the tokens that produced them")
    func outputRoundTrip() {
        let t = ApproximateTokenizer()
        let ids = Array(OutputVocabulary.tokens.prefix(10))
        #expect(t.encode(t.decode(ids)) == ids)
    }

    @Test("chats sharing a system prompt share a token prefix covering it")
    func sharedSystemPrompt() {
        let tpl = Llama3ChatTemplate()
        let system = ChatTurn(role: "system", content: String(repeating: "You are helpful. ", count: 50))
        let a = tpl.render([system, ChatTurn(role: "user", content: "first question")])
        let b = tpl.render([system, ChatTurn(role: "user", content: "another one entirely")])
        let common = zip(a, b).prefix { $0 == $1 }.count
        #expect(common >= 1 + 3 + 1 + 1 + 213)
        #expect(a.first == Llama3ChatTemplate.beginOfText)
    }

    @Test("a conversation's next turn starts with the previous prompt plus the answer")
    func growingHistory() {
        let tpl = Llama3ChatTemplate()
        let t = ApproximateTokenizer()
        let turn1 = [ChatTurn(role: "user", content: "hello there")]
        let answer = Array(OutputVocabulary.tokens.prefix(5))
        let prompt1 = tpl.render(turn1)
        let turn2 = turn1 + [ChatTurn(role: "assistant", content: t.decode(answer)), ChatTurn(role: "user", content: "more")]
        let prompt2 = tpl.render(turn2)
        #expect(Array(prompt2.prefix(prompt1.count + answer.count)) == prompt1 + answer)
    }
}
