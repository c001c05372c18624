//! A guarded pull reader for XML: any declared encoding, no DTDs, bounded depth and event size,
//! line numbers for errors, and small owned subtrees ([`Node`]) for one record at a time.

use crate::error::{Error, Position, Result};
use quick_xml::events::Event;
use std::collections::VecDeque;
use std::io::{BufRead, Read};

/// Limits that keep memory bounded whatever the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Longest run of bytes without `<` or `>` (one text node or one tag).
    pub max_event_bytes: usize,
    /// Most elements in one subtree read into memory (one camt entry, one invoice).
    pub max_subtree_nodes: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_event_bytes: 32 << 20,
            max_subtree_nodes: 200_000,
        }
    }
}

/// Reads bytes, converts them to UTF-8 according to the BOM or the XML declaration and refuses
/// runs of more than `max_run` bytes without markup.
pub(crate) struct Utf8Input<R> {
    inner: R,
    decoder: Option<encoding_rs::Decoder>,
    pending: VecDeque<u8>,
    raw: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    run: usize,
    max_run: usize,
    eof: bool,
}

impl<R: Read> Utf8Input<R> {
    pub(crate) fn new(mut inner: R, max_run: usize) -> Result<Self> {
        let mut head = vec![0u8; 1024];
        let mut n = 0;
        while n < head.len() {
            let k = inner.read(&mut head[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        head.truncate(n);
        let encoding = sniff_encoding(&head)?;
        let decoder =
            (encoding != encoding_rs::UTF_8).then(|| encoding.new_decoder_with_bom_removal());
        Ok(Self {
            inner,
            decoder,
            pending: head.into(),
            raw: vec![0u8; 64 << 10],
            out: Vec::new(),
            pos: 0,
            run: 0,
            max_run,
            eof: false,
        })
    }

    fn refill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.pos = 0;
        while self.out.is_empty() && !self.eof {
            let n = if !self.pending.is_empty() {
                let n = self.pending.len().min(self.raw.len());
                for (slot, b) in self.raw.iter_mut().zip(self.pending.drain(..n)) {
                    *slot = b;
                }
                n
            } else if self.decoder.is_none() {
                // UTF-8 needs no conversion: read straight into the output buffer.
                self.out.resize(self.raw.len(), 0);
                let n = self.inner.read(&mut self.out)?;
                self.out.truncate(n);
                if n == 0 {
                    self.eof = true;
                }
                continue;
            } else {
                self.inner.read(&mut self.raw)?
            };
            let last = n == 0;
            match &mut self.decoder {
                None => self.out.extend_from_slice(&self.raw[..n]),
                Some(d) => {
                    let need = d.max_utf8_buffer_length(n).unwrap_or(n * 3 + 16);
                    self.out.resize(need, 0);
                    let (_, _, written, _) = d.decode_to_utf8(&self.raw[..n], &mut self.out, last);
                    self.out.truncate(written);
                }
            }
            if last {
                self.eof = true;
            }
        }
        self.check_runs()
    }

    /// Refuse a run of more than `max_run` bytes without `<` or `>` (carried across buffers).
    fn check_runs(&mut self) -> std::io::Result<()> {
        let mut start = 0;
        let boundaries = memchr::memchr2_iter(b'<', b'>', &self.out);
        for at in boundaries.chain(std::iter::once(self.out.len())) {
            self.run += at - start;
            if self.run > self.max_run {
                return Err(std::io::Error::other(format!(
                    "more than {} bytes of text or markup without a tag boundary",
                    self.max_run
                )));
            }
            if at < self.out.len() {
                self.run = 0;
            }
            start = at + 1;
        }
        Ok(())
    }
}

impl<R: Read> Read for Utf8Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Utf8Input<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.out.len() {
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.out.len());
    }
}

/// The encoding named by a BOM or the XML declaration; UTF-8 when neither says otherwise.
pub(crate) fn sniff_encoding(head: &[u8]) -> Result<&'static encoding_rs::Encoding> {
    if let Some((enc, _)) = encoding_rs::Encoding::for_bom(head) {
        return Ok(enc);
    }
    if head.starts_with(b"<\0?\0") {
        return Ok(encoding_rs::UTF_16LE);
    }
    if head.starts_with(b"\0<\0?") {
        return Ok(encoding_rs::UTF_16BE);
    }
    if !head.starts_with(b"<?xml") {
        return Ok(encoding_rs::UTF_8);
    }
    let end = head
        .windows(2)
        .position(|w| w == b"?>")
        .unwrap_or(head.len());
    let decl = &head[..end];
    let Some(at) = decl.windows(8).position(|w| w == b"encoding") else {
        return Ok(encoding_rs::UTF_8);
    };
    let rest = &decl[at + 8..];
    let rest = rest
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == b'=')
        .copied();
    let mut rest = rest.skip_while(u8::is_ascii_whitespace);
    let Some(quote) = rest.next().filter(|q| *q == b'"' || *q == b'\'') else {
        return Err(Error::syntax(
            Position::line(1),
            "malformed encoding in the XML declaration",
        ));
    };
    let label: Vec<u8> = rest.take_while(|b| *b != quote).collect();
    encoding_rs::Encoding::for_label(&label).ok_or_else(|| {
        Error::Unsupported(format!(
            "unknown text encoding {:?} in the XML declaration",
            String::from_utf8_lossy(&label)
        ))
    })
}

/// One element with its attributes, text and children (namespace prefixes removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
    /// Line of the start tag.
    pub line: u64,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// First node at a `/`-separated path of child names (any matching branch).
    pub fn get(&self, path: &str) -> Option<&Node> {
        let mut out = None;
        self.walk(path, &mut |n| {
            if out.is_none() {
                out = Some(n);
            }
        });
        out
    }

    /// All nodes at a path, in document order.
    pub fn all(&self, path: &str) -> Vec<&Node> {
        let mut out = Vec::new();
        self.walk(path, &mut |n| out.push(n));
        out
    }

    fn walk<'a>(&'a self, path: &str, f: &mut dyn FnMut(&'a Node)) {
        match path.split_once('/') {
            None if path.is_empty() => f(self),
            None => {
                for c in self.children.iter().filter(|c| c.name == path) {
                    f(c);
                }
            }
            Some((head, rest)) => {
                for c in self.children.iter().filter(|c| c.name == head) {
                    c.walk(rest, f);
                }
            }
        }
    }

    /// Trimmed, non-empty text at a path.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        let mut out = None;
        self.walk(path, &mut |n| {
            let t = n.text.trim();
            if out.is_none() && !t.is_empty() {
                out = Some(t);
            }
        });
        out
    }

    /// Text at the first path of `paths` that has one.
    pub fn text_any(&self, paths: &[&str]) -> Option<&str> {
        paths.iter().find_map(|p| self.text_at(p))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Start of an element as seen by the stream.
#[derive(Debug, Clone)]
pub(crate) struct StartTag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub line: u64,
}

pub(crate) enum Ev {
    Start(StartTag),
    End,
    Text(String),
    Eof,
}

/// A pull stream of elements with depth and size limits and line tracking.
pub(crate) struct XmlStream<R: BufRead> {
    reader: quick_xml::Reader<R>,
    buf: Vec<u8>,
    line: u64,
    /// Element path of the open elements, `/`-separated, and where each one's name starts
    /// (one buffer, no allocation per element).
    path: String,
    starts: Vec<usize>,
    limits: XmlLimits,
    /// Namespace URI of the root element (from its `xmlns` attribute).
    pub root_namespace: Option<String>,
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_owned(),
        None => name.to_owned(),
    }
}

impl<R: BufRead> XmlStream<R> {
    pub(crate) fn new(input: R, limits: XmlLimits) -> Self {
        let mut reader = quick_xml::Reader::from_reader(input);
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        Self {
            reader,
            buf: Vec::new(),
            line: 1,
            path: String::new(),
            starts: Vec::new(),
            limits,
            root_namespace: None,
        }
    }

    pub(crate) fn depth(&self) -> usize {
        self.starts.len()
    }

    /// Position for an error: current line and element path.
    pub(crate) fn position(&self) -> Position {
        Position::at(self.line, self.path.clone())
    }

    pub(crate) fn next(&mut self) -> Result<Ev> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.next_into(&mut buf);
        self.buf = buf;
        r
    }

    fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Ev> {
        loop {
            buf.clear();
            let line_before = self.line;
            let ev = match self.reader.read_event_into(buf) {
                Ok(ev) => ev,
                Err(e) => {
                    let reason = match &e {
                        quick_xml::Error::Io(io) => io.to_string(),
                        other => format!("malformed XML: {other}"),
                    };
                    return Err(Error::syntax(
                        Position::at(self.line, self.path.clone()),
                        reason,
                    ));
                }
            };
            let newlines = ev.bytes().filter(|b| *b == b'\n').count();
            self.line += u64::try_from(newlines).unwrap_or(0);
            match ev {
                Event::Start(e) => {
                    let name = local(e.name().as_ref());
                    let mut attrs = Vec::new();
                    for a in e.attributes() {
                        let a = a.map_err(|err| {
                            Error::syntax(self.position(), format!("malformed attribute: {err}"))
                        })?;
                        let key = a.key.as_ref().to_owned();
                        let value = quick_xml::escape::unescape(&a.value)
                            .map_err(|err| {
                                Error::syntax(
                                    self.position(),
                                    format!("bad attribute value: {err}"),
                                )
                            })?
                            .into_owned();
                        if self.starts.is_empty() && key == "xmlns" {
                            self.root_namespace = Some(value.clone());
                        }
                        let key = if key.starts_with("xmlns") {
                            key
                        } else {
                            local(&key)
                        };
                        attrs.push((key, value));
                    }
                    self.starts.push(self.path.len());
                    if !self.path.is_empty() {
                        self.path.push('/');
                    }
                    self.path.push_str(&name);
                    if self.starts.len() > self.limits.max_depth {
                        return Err(Error::limit(
                            self.position(),
                            format!("elements nested deeper than {}", self.limits.max_depth),
                        ));
                    }
                    return Ok(Ev::Start(StartTag {
                        name,
                        attrs,
                        line: line_before,
                    }));
                }
                Event::End(_) => {
                    if let Some(at) = self.starts.pop() {
                        self.path.truncate(at);
                    }
                    return Ok(Ev::End);
                }
                Event::Text(t) => return Ok(Ev::Text(t.xml10_content().into_owned())),
                Event::CData(t) => return Ok(Ev::Text(t.xml10_content().into_owned())),
                Event::GeneralRef(r) => {
                    let text = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                            Some(s) => s.to_owned(),
                            None => {
                                return Err(Error::syntax(
                                    self.position(),
                                    format!("undefined entity &{};", &*r),
                                ));
                            }
                        },
                        Err(e) => {
                            return Err(Error::syntax(
                                self.position(),
                                format!("bad character reference: {e}"),
                            ));
                        }
                    };
                    return Ok(Ev::Text(text));
                }
                Event::DocType(_) => {
                    return Err(Error::syntax(
                        self.position(),
                        "document type declarations (DTD) are not accepted",
                    ));
                }
                Event::Eof => {
                    if !self.starts.is_empty() {
                        return Err(Error::syntax(
                            self.position(),
                            "unexpected end of file: element not closed",
                        ));
                    }
                    return Ok(Ev::Eof);
                }
                Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
    }

    /// Read the rest of the element whose start tag was just returned into a [`Node`].
    pub(crate) fn read_subtree(&mut self, start: StartTag) -> Result<Node> {
        let mut stack = vec![Node {
            name: start.name,
            attrs: start.attrs,
            line: start.line,
            ..Node::default()
        }];
        let mut count = 1usize;
        loop {
            match self.next()? {
                Ev::Start(t) => {
                    count += 1;
                    if count > self.limits.max_subtree_nodes {
                        return Err(Error::limit(
                            self.position(),
                            format!(
                                "more than {} elements in one record",
                                self.limits.max_subtree_nodes
                            ),
                        ));
                    }
                    stack.push(Node {
                        name: t.name,
                        attrs: t.attrs,
                        line: t.line,
                        ..Node::default()
                    });
                }
                Ev::End => {
                    let done = stack.pop().unwrap_or_default();
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Ev::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        if top.text.is_empty() {
                            top.text = t;
                        } else {
                            top.text.push_str(&t);
                        }
                    }
                }
                Ev::Eof => {
                    return Err(Error::syntax(self.position(), "unexpected end of file"));
                }
            }
        }
    }
}

/// Parse a whole (small) document into its root [`Node`] with the default limits.
pub fn parse_document(bytes: &[u8]) -> Result<Node> {
    let limits = XmlLimits::default();
    let input = Utf8Input::new(bytes, limits.max_event_bytes)?;
    let mut s = XmlStream::new(input, limits);
    loop {
        match s.next()? {
            Ev::Start(t) => return s.read_subtree(t),
            Ev::Text(t) if t.trim().is_empty() => {}
            Ev::Text(_) => {
                return Err(Error::syntax(s.position(), "text before the root element"));
            }
            Ev::End | Ev::Eof => {
                return Err(Error::syntax(s.position(), "no root element"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_declaration_is_honoured() {
        let mut doc = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<a><b>".to_vec();
        doc.extend_from_slice(&[0xDC, b'b', b'e', b'r']); // "Über" in Latin-1
        doc.extend_from_slice(b"</b></a>");
        let root = parse_document(&doc).unwrap();
        assert_eq!(root.text_at("b"), Some("Über"));
    }

    #[test]
    fn dtd_and_unknown_entities_are_refused() {
        let xxe = b"<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<a>&x;</a>";
        let err = parse_document(xxe).unwrap_err().to_string();
        assert!(err.contains("DTD"), "{err}");
        let err = parse_document(b"<a>&x;</a>").unwrap_err().to_string();
        assert!(err.contains("undefined entity"), "{err}");
        let root = parse_document(b"<a>x &amp; y &#252;</a>").unwrap();
        assert_eq!(root.text, "x & y ü");
    }

    #[test]
    fn depth_and_size_are_bounded_and_errors_have_lines() {
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        let err = parse_document(deep.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        let err = parse_document(b"<a>\n<b>\n</c></a>")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 3"), "{err}");
        let limits = XmlLimits {
            max_event_bytes: 100,
            ..XmlLimits::default()
        };
        let big = format!("<a>{}</a>", "x".repeat(1000));
        let input = Utf8Input::new(big.as_bytes(), limits.max_event_bytes).unwrap();
        let mut s = XmlStream::new(input, limits);
        let err = loop {
            match s.next() {
                Err(e) => break e,
                Ok(Ev::Eof) => panic!("limit not enforced"),
                Ok(_) => {}
            }
        };
        assert!(err.to_string().contains("without a tag boundary"), "{err}");
    }

    /// The run limit holds across the reader's 64 KiB buffers, and only a run longer than
    /// the limit is refused.
    #[test]
    fn runs_are_counted_across_buffers() {
        let drain = |doc: &[u8], max_run: usize| -> Result<()> {
            let limits = XmlLimits {
                max_event_bytes: max_run,
                ..XmlLimits::default()
            };
            let input = Utf8Input::new(doc, limits.max_event_bytes)?;
            let mut s = XmlStream::new(input, limits);
            loop {
                if let Ev::Eof = s.next()? {
                    return Ok(());
                }
            }
        };
        // 100,000 bytes of text starting 60,000 bytes in: it straddles the first buffer end.
        let mut doc = format!("<a><b>{}</b><c>", "y".repeat(60_000));
        doc.push_str(&"x".repeat(100_000));
        doc.push_str("</c></a>");
        assert!(drain(doc.as_bytes(), 100_000).is_ok());
        let err = drain(doc.as_bytes(), 99_999).unwrap_err().to_string();
        assert!(err.contains("without a tag boundary"), "{err}");
    }

    /// An error names the open elements as a path, and a closed sibling is no longer part of it.
    #[test]
    fn errors_name_the_element_path() {
        let err = parse_document(b"<Document><Stmt><Bal/><Ntry><Amt>1</Ntry>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Document/Stmt/Ntry/Amt"), "{err}");
        assert!(!err.contains("Bal"), "{err}");
    }

    #[test]
    fn paths_find_nested_values() {
        let root = parse_document(b"<r xmlns=\"urn:x\"><p:a xmlns:p=\"urn:p\"><b k=\"v\">1</b><b>2</b></p:a><a><b>3</b></a></r>").unwrap();
        let all: Vec<&str> = root.all("a/b").iter().map(|n| n.text.as_str()).collect();
        assert_eq!(all, ["1", "2", "3"]);
        assert_eq!(root.get("a/b").and_then(|n| n.attr("k")), Some("v"));
        assert_eq!(root.text_any(&["x/y", "a/b"]), Some("1"));
    }
}
