//! An incremental server-sent-events reader: bytes in as the network delivers them (an event
//! may span reads, a read may hold several events), the `data` of each whole event out.
//!
//! Only what OpenAI-style servers send matters here: `data:` lines (several in one event are
//! joined with newlines, as the SSE spec says), comments (`:` lines, keep-alives) and other
//! fields are skipped, and lines end with `\n`, `\r\n` or `\r`.

#[derive(Default)]
pub struct SseReader {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The `data` lines of the event being read.
    data: Option<String>,
    /// The last byte fed was `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
}

impl SseReader {
    /// Feeds bytes; returns the data of every event they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(data) = self.end_line(&line) {
                        events.push(data);
                    }
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    /// Bytes of an unfinished event are waiting (a stream that stops here was cut off).
    pub fn pending(&self) -> bool {
        !self.line.is_empty() || self.data.is_some()
    }

    /// A line has ended; an empty one dispatches the event.
    fn end_line(&mut self, line: &[u8]) -> Option<String> {
        if line.is_empty() {
            return self.data.take();
        }
        // Invalid UTF-8 is kept visible (replacement characters) so the JSON parse that
        // follows reports it rather than this reader dropping it silently.
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = b"data: {\"a\":1}\n\n: keep-alive\n\ndata: [DONE]\n\n";
        // Every split point, including inside "\n\n" and inside a field name.
        for cut in 0..=text.len() {
            let mut r = SseReader::default();
            let mut got = r.push(&text[..cut]);
            got.extend(r.push(&text[cut..]));
            assert_eq!(got, ["{\"a\":1}", "[DONE]"], "cut at {cut}");
            assert!(!r.pending());
        }
    }

    #[test]
    fn crlf_and_cr_line_ends_and_multi_line_data() {
        let mut r = SseReader::default();
        let got = r.push(b"event: x\r\ndata: one\r\ndata:two\r\n\r\ndata: 3\r\r");
        assert_eq!(got, ["one\ntwo", "3"]);
        // A \r\n split across reads is one line end, not two (which would end the event).
        let mut r = SseReader::default();
        assert!(r.push(b"data: a\r").is_empty());
        assert!(r.push(b"\ndata: b\n").is_empty());
        assert_eq!(r.push(b"\n"), ["a\nb"]);
    }

    #[test]
    fn an_unfinished_event_is_pending() {
        let mut r = SseReader::default();
        assert!(r.push(b"data: {\"partial\"").is_empty());
        assert!(r.pending());
        let mut r = SseReader::default();
        assert!(r.push(b"data: x\n").is_empty());
        assert!(r.pending());
    }
}
