//! Webhook payloads as people hand them over: one per line (JSON lines), pretty-printed, or
//! several pretty-printed values one after another (`jq . export.jsonl`).

use serde::de::IgnoredAny;

/// One value of a text, or a stretch of it that is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// The line it starts on, from 1.
    pub line: usize,
    /// Its text, trimmed; not JSON when reading failed there (it then fails as such, once).
    pub text: &'a str,
}

/// Splits `text` into its JSON values, whatever the layout. A stretch that is not JSON becomes
/// one chunk, up to the next line that starts (unindented) with `{` or `[`, where reading picks up
/// again: a broken line of JSON lines is one chunk, as a broken pretty-printed value is.
pub fn values(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<IgnoredAny>();
        let mut end = at;
        let failed = loop {
            match stream.next() {
                None => break false,
                Some(Ok(_)) => {
                    let next = at + stream.byte_offset();
                    push(&mut chunks, text, end, next);
                    end = next;
                }
                Some(Err(_)) => break true,
            }
        };
        if !failed {
            break;
        }
        let start = end + (text[end..].len() - text[end..].trim_start().len());
        let stop = next_value_line(text, start);
        push(&mut chunks, text, start, stop);
        at = stop;
    }
    chunks
}

fn push<'a>(chunks: &mut Vec<Chunk<'a>>, text: &'a str, start: usize, end: usize) {
    let piece = &text[start..end];
    let trimmed = piece.trim();
    if trimmed.is_empty() {
        return;
    }
    let first = start + (piece.len() - piece.trim_start().len());
    chunks.push(Chunk {
        line: 1 + text[..first].matches('\n').count(),
        text: trimmed,
    });
}

/// Where the first line after the one holding `start` that begins with `{` or `[` starts, else
/// the end of the text.
fn next_value_line(text: &str, start: usize) -> usize {
    let mut at = text[start..]
        .find('\n')
        .map_or(text.len(), |newline| start + newline + 1);
    while at < text.len() {
        if text[at..].starts_with(['{', '[']) {
            return at;
        }
        at = text[at..]
            .find('\n')
            .map_or(text.len(), |newline| at + newline + 1);
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_and_texts(text: &str) -> Vec<(usize, &str)> {
        values(text).into_iter().map(|c| (c.line, c.text)).collect()
    }

    #[test]
    fn json_lines_and_pretty_printed_values_read_alike() {
        assert_eq!(
            lines_and_texts("{\"a\":1}\n\n{\"b\":2}\n"),
            [(1, "{\"a\":1}"), (3, "{\"b\":2}")]
        );
        assert_eq!(
            lines_and_texts("{\n  \"a\": 1\n}\n{\n  \"b\": 2\n}\n"),
            [(1, "{\n  \"a\": 1\n}"), (4, "{\n  \"b\": 2\n}")]
        );
    }

    #[test]
    fn what_is_not_json_is_one_chunk_and_reading_goes_on() {
        assert_eq!(
            lines_and_texts("{\"a\":1}\n{ broken\n{\"b\":2}\n"),
            [(1, "{\"a\":1}"), (2, "{ broken"), (3, "{\"b\":2}")]
        );
        assert_eq!(
            lines_and_texts("{\n  \"a\": 1,\n  oops\n}\n{\n  \"b\": 2\n}"),
            [(1, "{\n  \"a\": 1,\n  oops\n}"), (5, "{\n  \"b\": 2\n}")]
        );
        assert_eq!(lines_and_texts("not json"), [(1, "not json")]);
        assert!(values(" \n ").is_empty());
    }
}
