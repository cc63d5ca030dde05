//! gpt-oss's harmony output format: generated text is a sequence of messages
//! `<|channel|>NAME<|message|>TEXT<|end|><|start|>assistant…`, ending with `<|return|>` (or
//! `<|call|>` for tool calls). `analysis` carries the reasoning, `final` the answer.

/// One message of the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: String,
    pub text: String,
    /// Whom the message is addressed to (`to=functions.get_weather`: a tool call), if anyone.
    pub recipient: Option<String>,
}

const CHANNEL: &str = "<|channel|>";
const MESSAGE: &str = "<|message|>";
/// What ends a message's text.
const TERMINATORS: [&str; 4] = ["<|end|>", "<|return|>", "<|call|>", "<|start|>"];

/// Where the first terminator in `s` starts (`s.len()` if none), in one pass: searching for
/// each terminator separately would scan past the message to the end of the text every time,
/// quadratic in the number of messages.
fn message_end(s: &str) -> usize {
    let mut from = 0;
    while let Some(i) = s[from..].find("<|") {
        let at = from + i;
        if TERMINATORS.iter().any(|t| s[at..].starts_with(t)) {
            return at;
        }
        from = at + 2;
    }
    s.len()
}

/// Splits harmony text into messages by channel. Text outside any message is ignored; an
/// unterminated last message is kept (generation may stop early). Linear in the text length.
pub fn parse(text: &str) -> Vec<Message> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(c) = rest.find(CHANNEL) {
        // Before the channel: `<|start|>assistant to=functions.x` (a recipient may stand here).
        let before = &rest[..c];
        rest = &rest[c + CHANNEL.len()..];
        let Some(m) = rest.find(MESSAGE) else {
            break;
        };
        // The header may carry more than the name (`final <|constrain|>json`, `to=functions.x`).
        let header = &rest[..m];
        // (The name ends at a space or at a control token: `final<|constrain|>json` is final.)
        let channel = header
            .trim_start()
            .split(|ch: char| ch.is_whitespace() || ch == '<')
            .next()
            .unwrap_or("")
            .to_string();
        let recipient = before
            .rsplit("<|start|>")
            .next()
            .into_iter()
            .chain([header])
            .flat_map(|h| h.split(|ch: char| ch.is_whitespace() || ch == '<' || ch == '>'))
            .find_map(|w| w.strip_prefix("to="))
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        rest = &rest[m + MESSAGE.len()..];
        let end = message_end(rest);
        out.push(Message {
            channel,
            text: rest[..end].to_string(),
            recipient,
        });
        rest = &rest[end..];
    }
    out
}

/// The `final` channel's text (what a chat shows as the answer); all text if there is none.
pub fn final_text(text: &str) -> String {
    let msgs = parse(text);
    match msgs.iter().rev().find(|m| m.channel == "final") {
        Some(m) => m.text.clone(),
        None if msgs.is_empty() => text.to_string(),
        None => String::new(),
    }
}

/// What a conversation keeps of a reply: its `final` text only. Harmony drops the analysis
/// (reasoning) of earlier turns when the conversation goes on, so it never takes room in the
/// history. Control tokens (`<|name|>`) a short or odd generation left in the text are removed,
/// so that re-rendering the history gives well-formed harmony messages.
pub fn history_text(text: &str) -> String {
    let fin = final_text(text);
    let mut out = String::with_capacity(fin.len());
    let mut rest = fin.as_str();
    while let Some(i) = rest.find("<|") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with("|>") {
            rest = &after[name_len + 2..];
        } else {
            out.push_str("<|");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The `analysis` channel's text (reasoning).
pub fn analysis_text(text: &str) -> String {
    parse(text)
        .into_iter()
        .filter(|m| m.channel == "analysis")
        .map(|m| m.text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_channels() {
        let t = "<|channel|>analysis<|message|>User asks 2+2.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>";
        let m = parse(t);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            Message {
                channel: "analysis".into(),
                text: "User asks 2+2.".into(),
                recipient: None,
            }
        );
        assert_eq!(final_text(t), "4");
        assert_eq!(analysis_text(t), "User asks 2+2.");
        // unterminated final message, and a constrained header
        let t = "<|channel|>final <|constrain|>json<|message|>{\"a\":1";
        assert_eq!(final_text(t), "{\"a\":1");
        let t = "<|channel|>final<|constrain|>json<|message|>{}";
        assert_eq!(final_text(t), "{}");
        assert_eq!(final_text("plain text"), "plain text");
    }

    #[test]
    fn history_keeps_the_final_text_without_control_tokens() {
        let t = "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>";
        assert_eq!(history_text(t), "4");
        // No channel at all (a generation cut short, or a model gone astray): the text without
        // its control tokens; `<|` that opens no token name stays.
        assert_eq!(
            history_text("a<|end|>b<|start|>c <| x |> d<|"),
            "abc <| x |> d<|"
        );
        // Cut off inside the analysis: nothing final to keep.
        assert_eq!(history_text("<|channel|>analysis<|message|>Thin"), "");
    }

    #[test]
    fn long_outputs_parse_in_linear_time() {
        // 200,000 messages ended by <|end|> with no <|return|>/<|call|>/<|start|> anywhere:
        // searching each terminator through the rest of the text took minutes.
        let text = "<|channel|>analysis<|message|>x<|end|>".repeat(200_000);
        let start = std::time::Instant::now();
        let m = parse(&text);
        assert_eq!(m.len(), 200_000);
        assert!(m.iter().all(|m| m.channel == "analysis" && m.text == "x"));
        // Milliseconds in linear time; ten seconds leaves room for a busy machine.
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        // A terminator split by other markers still ends the message where it starts.
        let m = parse("<|channel|>final<|message|>a<|b<|<|return|>");
        assert_eq!(m[0].text, "a<|b<|");
    }
}
