//! How deep a YAML text nests, measured before any YAML parser sees it.
//!
//! serde_yaml's time grows with the square of the nesting depth (100 000 levels of `[` keep
//! it busy for over a minute), and an environment never needs more than a few levels. So
//! every YAML text airlock reads is measured here first, in one linear pass, and refused past
//! [`MAX_DEPTH`] levels, as the size cap refuses a file over 1 MiB.
//!
//! The pass is not a parser: it counts what opens a collection. Flow collections (`[`, `{`)
//! count where a node can start (anywhere inside a flow collection; at the start of a value
//! in block context, where `a[1]` is text); block collections count by indentation: each
//! sequence entry (`- `), mapping key (`key:`) or complex key (`? `) at a column deeper than
//! the collection it is in opens one more level, and a block sequence may sit at its mapping
//! key's own column (`key:` then `- item`). Quoted scalars (`'it''s'`, `"a \" ["`), comments
//! and block scalars (`|`, `>`: a setup script full of `[ -f x ]`) are skipped. Where the
//! pass is unsure it may count a level too many on a line, never fewer levels than a parser
//! would build: a text it accepts nests at most [`MAX_DEPTH`] levels deep, and one that nests
//! no deeper than an environment could ever need (a handful) is never refused.

/// The deepest nesting accepted: `env: {A: [1]}` is three levels.
pub const MAX_DEPTH: usize = 64;

/// Where a text first nests deeper than [`MAX_DEPTH`]: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// Measure `text`; `Err` at the first collection opened past [`MAX_DEPTH`] levels.
pub fn check(text: &str) -> Result<(), TooDeep> {
    Pass::new(MAX_DEPTH).run(text.as_bytes()).map(drop)
}

#[derive(Default)]
struct Pass {
    /// The deepest nesting allowed, and the deepest seen.
    limit: usize,
    deepest: usize,
    /// Open block collections: (column, is a sequence), innermost last.
    blocks: Vec<(usize, bool)>,
    /// Open flow collections.
    flow: usize,
    /// In flow context, whether a token (rather than more of a plain scalar) starts here.
    token: bool,
    /// Inside a quoted scalar that continues on the next line.
    quote: Option<u8>,
    /// Inside a block scalar: its lines are those indented deeper than this column (`None`
    /// for a block scalar at the top level, which runs to the end of the document).
    scalar: Option<Option<usize>>,
    line: usize,
}

impl Pass {
    fn new(limit: usize) -> Pass {
        Pass {
            limit,
            ..Pass::default()
        }
    }

    /// The deepest nesting in `text`, or where it first goes past the limit.
    fn run(mut self, text: &[u8]) -> Result<usize, TooDeep> {
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            self.line = n + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.one_line(line)?;
        }
        Ok(self.deepest)
    }

    /// A collection was opened at column `at` of the current line.
    fn too_deep(&mut self, at: usize) -> Result<(), TooDeep> {
        self.deepest = self.deepest.max(self.blocks.len() + self.flow);
        if self.blocks.len() + self.flow > self.limit {
            Err(TooDeep {
                line: self.line,
                column: at + 1,
            })
        } else {
            Ok(())
        }
    }

    fn one_line(&mut self, line: &[u8]) -> Result<(), TooDeep> {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = line[indent..].iter().all(|&b| b == b' ' || b == b'\t');
        if let Some(within) = self.scalar {
            let marker = line.starts_with(b"---") || line.starts_with(b"...");
            if blank || within.map_or(!marker, |col| indent > col) {
                return Ok(());
            }
            self.scalar = None;
        }
        if line.starts_with(b"---") || line.starts_with(b"...") {
            let rest = &line[3..];
            if rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t' {
                // A new document: no block collection is open any more. (A flow collection
                // or a quoted scalar cut off by one is an error the parser reports; counting
                // on is never too little.)
                self.blocks.clear();
                self.quote = None;
                return self.rest(line, 3, None);
            }
        }
        if self.quote.is_some() || self.flow > 0 {
            // A continuation line: indentation means nothing here.
            return self.rest(line, 0, None);
        }
        if blank || line[indent] == b'#' {
            return Ok(());
        }
        self.rest(line, indent, Some(indent))
    }

    /// Scan `line` from `at`. `block` is the column of the line's first node when it starts
    /// in block context (so indentation decides which block collections it is in).
    fn rest(
        &mut self,
        line: &[u8],
        mut at: usize,
        mut block: Option<usize>,
    ) -> Result<(), TooDeep> {
        // Where a node may start in block context (after an indicator, an anchor or a tag).
        let mut node_start = block.is_some();
        // The column of the collection that owns a block scalar starting on this line.
        let mut owner = None;
        while at < line.len() {
            let b = line[at];
            if let Some(q) = self.quote {
                let Some(end) = end_of_quote(line, at, q) else {
                    return Ok(());
                };
                // What follows a quoted scalar starts a token.
                (self.quote, at, node_start) = (None, end, true);
                self.token = line.get(at) == Some(&b':');
                continue;
            }
            if self.flow > 0 {
                // Flow context: every `[` and `{` outside a quoted scalar opens a level (a
                // plain scalar ends at one). A quote opens a quoted scalar only where a token
                // starts (after an indicator or a comment): in `[it's]` it is text.
                let token = self.token;
                self.token = match b {
                    b'[' | b'{' => {
                        self.flow += 1;
                        self.too_deep(at)?;
                        true
                    }
                    b']' | b'}' => {
                        self.flow -= 1;
                        true
                    }
                    b',' => true,
                    b'\'' | b'"' if token => {
                        self.quote = Some(b);
                        at += 1;
                        if let Some(end) = end_of_quote(line, at, b) {
                            self.quote = None;
                            at = end;
                        } else {
                            return Ok(());
                        }
                        // `"key":value`: the `:` right after a quoted scalar is an indicator.
                        self.token = line.get(at) == Some(&b':');
                        continue;
                    }
                    b':' | b'?' => {
                        token || line.get(at + 1).is_none_or(|c| b" \t,[]{}".contains(c))
                    }
                    b'#' if at == 0 || line[at - 1] == b' ' || line[at - 1] == b'\t' => {
                        self.token = true;
                        return Ok(());
                    }
                    b' ' | b'\t' => token,
                    _ => false,
                };
                at += 1;
                continue;
            }
            // Block context.
            match b {
                b' ' | b'\t' => {
                    at += 1;
                    continue;
                }
                b'#' if at == 0 || line[at - 1] == b' ' || line[at - 1] == b'\t' => return Ok(()),
                _ => {}
            }
            let next_blank = line.get(at + 1).is_none_or(|&c| c == b' ' || c == b'\t');
            if node_start && (b == b'-' || b == b'?') && next_blank {
                // A sequence entry or a complex key: one more block level at this column.
                self.open_block(at, b == b'-', &mut block)?;
                owner = Some(at);
                at += 1;
                continue;
            }
            if node_start && (b == b'&' || b == b'!') {
                // An anchor or a tag: the node itself follows.
                at += line[at..]
                    .iter()
                    .take_while(|&&c| c != b' ' && c != b'\t')
                    .count();
                continue;
            }
            if node_start && (b == b'[' || b == b'{') {
                self.flow = 1;
                self.token = true;
                self.too_deep(at)?;
                at += 1;
                continue;
            }
            if node_start && (b == b'|' || b == b'>') {
                // A block scalar: the following lines deeper than its owner are its text.
                self.scalar = Some(owner.or(block));
                return Ok(());
            }
            // A scalar, quoted or plain, which may be a mapping key.
            let start = at;
            let mut key = false;
            if b == b'\'' || b == b'"' {
                let Some(end) = end_of_quote(line, at + 1, b) else {
                    self.quote = Some(b);
                    return Ok(());
                };
                at = end + line[end..].iter().take_while(|&&c| c == b' ').count();
                key = line.get(at) == Some(&b':')
                    && line.get(at + 1).is_none_or(|&c| c == b' ' || c == b'\t');
                if !key {
                    // Whatever follows is a token of its own (`"a" [` opens a flow sequence).
                    node_start = true;
                    continue;
                }
            }
            // A plain scalar runs to the `: ` that makes it a key, a comment, or the end of
            // the line.
            while !key && at < line.len() {
                let c = line[at];
                let after = line.get(at + 1).is_none_or(|&d| d == b' ' || d == b'\t');
                if c == b':' && after {
                    key = true;
                    break;
                }
                if c == b'#' && at > start && (line[at - 1] == b' ' || line[at - 1] == b'\t') {
                    return Ok(());
                }
                at += 1;
            }
            if !key {
                return Ok(());
            }
            // A mapping key at `start`: the value follows the `:`.
            self.open_block(start, false, &mut block)?;
            owner = Some(start);
            node_start = true;
            at += 1;
        }
        Ok(())
    }

    /// A block collection entry (a sequence entry if `seq`, else a mapping key) at `column`.
    /// The first on a line (`block` is its column) closes what it is not inside; later ones
    /// on the same line (`- - a`, `- key: v`) nest in it.
    fn open_block(
        &mut self,
        column: usize,
        seq: bool,
        block: &mut Option<usize>,
    ) -> Result<(), TooDeep> {
        if block.take().is_some() {
            while let Some(&(col, is_seq)) = self.blocks.last() {
                // Deeper collections end here; so does a sequence at this column when a key
                // comes (the sequence was the value of the key before it).
                if col > column || col == column && is_seq && !seq {
                    self.blocks.pop();
                } else {
                    break;
                }
            }
            if self.blocks.last() == Some(&(column, seq)) {
                return Ok(());
            }
        }
        self.blocks.push((column, seq));
        self.too_deep(column)
    }
}

/// The index just past the closing `quote` of a quoted scalar whose text starts at `from`
/// (`''` inside single quotes and `\` escapes inside double quotes are text); `None` when it
/// continues past this line.
fn end_of_quote(line: &[u8], mut from: usize, quote: u8) -> Option<usize> {
    while from < line.len() {
        let b = line[from];
        if quote == b'"' && b == b'\\' {
            from += 2;
            continue;
        }
        if b == quote {
            if quote == b'\'' && line.get(from + 1) == Some(&b'\'') {
                from += 2;
                continue;
            }
            return Some(from + 1);
        }
        from += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{check, Pass, TooDeep, MAX_DEPTH};

    /// `depth` levels of flow sequences, in a document that is itself one more level.
    fn flow(depth: usize) -> String {
        format!("a: {}1{}\n", "[".repeat(depth - 1), "]".repeat(depth - 1))
    }

    /// `depth` levels of block mappings, one per line.
    fn block(depth: usize) -> String {
        let mut text = String::new();
        for level in 0..depth - 1 {
            text.push_str(&format!("{}k{level}:\n", "  ".repeat(level)));
        }
        text.push_str(&format!("{}x: 1\n", "  ".repeat(depth - 1)));
        text
    }

    /// `depth` levels of block sequences, all on one line (`- - - 1`).
    fn compact(depth: usize) -> String {
        format!("{}1\n", "- ".repeat(depth))
    }

    /// serde_yaml's own count of levels: the reference for what the pass measures.
    fn parsed(text: &str) -> usize {
        fn depth(v: &serde_yaml::Value) -> usize {
            match v {
                serde_yaml::Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
                serde_yaml::Value::Mapping(m) => {
                    1 + m
                        .iter()
                        .map(|(k, v)| depth(k).max(depth(v)))
                        .max()
                        .unwrap_or(0)
                }
                serde_yaml::Value::Tagged(t) => depth(&t.value),
                _ => 0,
            }
        }
        let value: serde_yaml::Value = serde_yaml::from_str(text).expect(text);
        depth(&value)
    }

    fn measured(text: &str) -> usize {
        Pass::new(usize::MAX).run(text.as_bytes()).unwrap()
    }

    #[test]
    fn sixty_four_levels_pass_and_sixty_five_are_refused_flow_and_block() {
        for make in [flow, block, compact] {
            for depth in [MAX_DEPTH - 1, MAX_DEPTH] {
                let text = make(depth);
                assert_eq!(parsed(&text), depth, "{text}");
                assert_eq!(measured(&text), depth, "{text}");
                assert_eq!(check(&text), Ok(()), "{text}");
            }
            let text = make(MAX_DEPTH + 1);
            assert_eq!(parsed(&text), MAX_DEPTH + 1);
            assert!(check(&text).is_err(), "{text}");
        }
        // Named where the 65th level opens.
        assert_eq!(
            check(&flow(MAX_DEPTH + 1)),
            Err(TooDeep {
                line: 1,
                column: 4 + MAX_DEPTH - 1
            })
        );
        assert_eq!(
            check(&block(MAX_DEPTH + 1)),
            Err(TooDeep {
                line: MAX_DEPTH + 1,
                column: 2 * MAX_DEPTH + 1
            })
        );
        assert_eq!(
            check(&compact(MAX_DEPTH + 1)),
            Err(TooDeep {
                line: 1,
                column: 2 * MAX_DEPTH + 1
            })
        );
    }

    #[test]
    fn brackets_in_quotes_comments_and_block_scalars_do_not_count() {
        let many = "[".repeat(100);
        let curly = "{".repeat(100);
        for text in [
            format!("a: \"{many}\"\n"),
            format!("a: '{many}'\n"),
            format!("a: 'it''s {many}'\n"),
            format!("a: \"say \\\" {many}\"\n"),
            format!("a: [\"{many}\", '{curly}', \"x\\\"{many}\"]\n"),
            format!("a: {{k: '{many}'}}\n"),
            format!("\"{many}\": 1\n"),
            format!("a: \"one line\n  {many}\n  end\"\nb: 1\n"),
            format!("a: [1, 'two\n  {many}'\n  ]\n"),
            format!("# {many}\na: 1 # {many}\nb: [1, # {many}\n  2]\n"),
            format!("setup: |\n  if [ -f x ]; then {many}\n\n  fi\nb: 1\n"),
            format!("- >-\n  {many}\n- 2\n"),
            format!("a: x{many}\n"),
            format!("a: it's {many}\n"),
            format!("a: [it's, x]\nb: '{many}'\n"),
        ] {
            assert!(measured(&text) <= 2, "{} for\n{text}", measured(&text));
            assert!(parsed(&text) <= 2, "{text}");
            assert_eq!(check(&text), Ok(()));
        }
    }

    /// Never fewer levels than the parser builds, on shapes an environment has and on the
    /// awkward ones (a sequence at its key's column, `- key:`, `? key`, anchors and tags,
    /// flow inside block, JSON-like keys, several documents).
    #[test]
    fn the_pass_never_counts_fewer_levels_than_the_parser() {
        for text in [
            "image: base\nenv:\n  A: 1\n  B: [1, {c: d}]\npersist: [/a, /b]\n",
            "a:\n- x\n- y:\n  - z\nb: 1\n",
            "- a: 1\n  b:\n    - [1, [2, [3]]]\n",
            "? [a, b]\n: c\n",
            "a: &x [1, [2]]\nb: !!seq [[3]]\nc: *x\n",
            "{\"a\":[1,{\"b\":[2]}]}\n",
            "a: 1\n---\nb: [[[1]]]\n",
            "a:\n  b:\n    c:\n      - d:\n          e: [f]\n  g: 1\n",
            "a: [1,\n  [2,\n    [3]],\n  4]\n",
        ] {
            let (m, p) = (measured(text), parsed(text.split("---").last().unwrap()));
            assert!(m >= p, "measured {m} < parsed {p} for\n{text}");
            assert!(m <= p + 1, "measured {m}, parsed {p} for\n{text}");
        }
    }

    /// A quote that is text (inside a plain scalar) hides nothing.
    #[test]
    fn a_quote_inside_a_plain_scalar_hides_no_bracket() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        for text in [
            format!("a: [it's, {deep}]\n"),
            format!("a: [x \"y, {deep}]\n"),
            format!("a: [k:'v, {deep}]\n"),
            format!("a: it's\nb: {deep}\n"),
            format!("a: \"q\" {deep}\n"),
        ] {
            assert!(check(&text).is_err(), "{text}");
        }
        assert!(parsed(&format!("a: [it's, {deep}]\n")) > MAX_DEPTH);
    }

    /// A hundred thousand levels are refused at once, in one pass.
    #[test]
    fn a_hundred_thousand_levels_are_refused_at_the_sixty_fifth() {
        let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            check(&text),
            Err(TooDeep {
                line: 1,
                column: 4 + MAX_DEPTH - 1
            })
        );
    }
}
