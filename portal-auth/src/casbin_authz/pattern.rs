//! Object patterns: the part of casbin's `keyMatch3` the index compiles, with the same meaning.
//!
//! casbin's `keyMatch3(key, pattern)` rewrites the pattern into a regular expression: every
//! `/*` becomes `/.*`, every `{name}` becomes `[^/]+`, and the result is anchored as
//! `^…$`. Any other character is passed to the regex engine as it is, so a `.` or a `+`
//! in a pattern would silently change its meaning. The index therefore accepts only
//! patterns whose every character is literal to the regex engine, and compiles them into
//! three kinds of step with exactly the regex's meaning:
//!
//! | pattern text | regex | step |
//! |---|---|---|
//! | `a-z A-Z 0-9 _ - / : @ = ~` | itself | [`Atom::Byte`] |
//! | `*` right after a `/` | `.*` (any characters but a newline) | [`Atom::AnyRun`] |
//! | `{name}`, at most one per path segment | `[^/]+` | [`Atom::SegmentFirst`], [`Atom::SegmentRest`] |
//!
//! The pattern `*` alone is not a `keyMatch3` pattern at all (its regex does not compile);
//! the portal's matcher tests `p.obj == "*"` first, and [`ObjectPattern::Any`] stands for it.
//!
//! Matching is a set-of-states simulation, linear in the object's length, so no object a
//! client sends can make a check slow.

/// The longest object or object pattern a policy line may hold, in bytes.
pub(crate) const MAX_OBJECT_LEN: usize = 256;

/// A policy line's object, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ObjectPattern {
    /// `*`: every object.
    Any,
    /// No wildcard: the object must equal the text.
    Exact,
    /// A pattern with wildcards.
    Pattern(CompiledPattern),
}

/// One step of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Atom {
    /// One byte, exactly.
    Byte(u8),
    /// Any run of bytes without a newline, possibly empty (the regex `.*`).
    AnyRun,
    /// One byte other than `/` (the first of `[^/]+`).
    SegmentFirst,
    /// Any run of bytes without a `/`, possibly empty (the rest of `[^/]+`).
    SegmentRest,
}

/// A pattern with at least one wildcard, with fast paths for the common shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledPattern {
    /// The literal bytes before the first wildcard; every match starts with them.
    prefix: Box<[u8]>,
    /// How the rest after `prefix` is matched.
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `prefix/*`: the rest holds no newline.
    AnyRest,
    /// `prefix{id}`: the rest is not empty and holds no `/`.
    OneSegment,
    /// Anything else: the steps after `prefix`.
    General(Box<[Atom]>),
}

/// Compiles an object of a policy line.
///
/// # Errors
///
/// A reason, in lowercase, when the text is not an object or pattern the index and
/// casbin's `keyMatch3` agree on.
pub(crate) fn compile(text: &str) -> Result<ObjectPattern, &'static str> {
    if text.is_empty() {
        return Err("the object is empty");
    }
    if text.len() > MAX_OBJECT_LEN {
        return Err("the object is longer than 256 bytes");
    }
    if text == "*" {
        return Ok(ObjectPattern::Any);
    }
    if text.bytes().all(is_literal) {
        return Ok(ObjectPattern::Exact);
    }
    let bytes = text.as_bytes();
    let mut atoms = Vec::with_capacity(bytes.len());
    let mut placeholder_in_segment = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'*' => {
                if i == 0 || bytes[i - 1] != b'/' {
                    return Err("a `*` must follow a `/` (as in `cases/*`) or stand alone");
                }
                atoms.push(Atom::AnyRun);
                i += 1;
            }
            b'{' => {
                if placeholder_in_segment {
                    return Err("a path segment holds at most one `{name}`");
                }
                let close = bytes[i + 1..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("a `{` is not closed by `}`")?;
                let name = &bytes[i + 1..i + 1 + close];
                if !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    return Err("a `{name}` holds only letters, digits and `_`");
                }
                atoms.push(Atom::SegmentFirst);
                atoms.push(Atom::SegmentRest);
                placeholder_in_segment = true;
                i += close + 2;
            }
            b'/' => {
                placeholder_in_segment = false;
                atoms.push(Atom::Byte(b));
                i += 1;
            }
            _ if is_literal(b) => {
                atoms.push(Atom::Byte(b));
                i += 1;
            }
            _ => return Err("an object holds only `a-z A-Z 0-9 _ - / : @ = ~`, `/*` and `{name}`"),
        }
    }
    let literal_len = atoms.iter().take_while(|a| matches!(a, Atom::Byte(_))).count();
    if literal_len == atoms.len() {
        return Ok(ObjectPattern::Exact);
    }
    let prefix: Box<[u8]> = bytes[..literal_len].into();
    let rest = &atoms[literal_len..];
    let shape = match rest {
        [Atom::AnyRun] => Shape::AnyRest,
        [Atom::SegmentFirst, Atom::SegmentRest] => Shape::OneSegment,
        _ => Shape::General(rest.into()),
    };
    Ok(ObjectPattern::Pattern(CompiledPattern { prefix, shape }))
}

/// Whether a byte stands for itself in a pattern (and in casbin's regex).
fn is_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b':' | b'@' | b'=' | b'~')
}

impl CompiledPattern {
    /// Whether `object` matches, exactly as `keyMatch3(object, pattern)` does.
    pub(crate) fn matches(&self, object: &str) -> bool {
        let Some(rest) = object.as_bytes().strip_prefix(&*self.prefix) else {
            return false;
        };
        match &self.shape {
            Shape::AnyRest => !rest.contains(&b'\n'),
            Shape::OneSegment => !rest.is_empty() && !rest.contains(&b'/'),
            Shape::General(atoms) => simulate(atoms, rest),
        }
    }
}

/// Runs the steps as a nondeterministic automaton over `input`: state `i` means "the
/// next step is `atoms[i]`", and state `atoms.len()` accepts.
fn simulate(atoms: &[Atom], input: &[u8]) -> bool {
    let states = atoms.len() + 1;
    let mut current = vec![false; states];
    let mut next = vec![false; states];
    current[0] = true;
    close(atoms, &mut current);
    for &b in input {
        next.iter_mut().for_each(|s| *s = false);
        let mut any = false;
        for (i, atom) in atoms.iter().enumerate() {
            if !current[i] {
                continue;
            }
            let target = match atom {
                Atom::Byte(c) => (*c == b).then_some(i + 1),
                Atom::AnyRun => (b != b'\n').then_some(i),
                Atom::SegmentFirst => (b != b'/').then_some(i + 1),
                Atom::SegmentRest => (b != b'/').then_some(i),
            };
            if let Some(t) = target {
                next[t] = true;
                any = true;
            }
        }
        if !any {
            return false;
        }
        close(atoms, &mut next);
        std::mem::swap(&mut current, &mut next);
    }
    current[atoms.len()]
}

/// Adds the states reachable without reading a byte: a run that may be empty can be skipped.
fn close(atoms: &[Atom], states: &mut [bool]) {
    for (i, atom) in atoms.iter().enumerate() {
        if states[i] && matches!(atom, Atom::AnyRun | Atom::SegmentRest) {
            states[i + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, object: &str) -> bool {
        match compile(pattern).unwrap() {
            ObjectPattern::Any => true,
            ObjectPattern::Exact => pattern == object,
            ObjectPattern::Pattern(p) => p.matches(object),
        }
    }

    #[test]
    fn a_trailing_star_matches_everything_below_but_not_a_newline() {
        assert!(matches("cases/*", "cases/"));
        assert!(matches("cases/*", "cases/wf_1/notes"));
        assert!(!matches("cases/*", "cases"));
        assert!(!matches("cases/*", "casesx/1"));
        assert!(!matches("cases/*", "cases/a\nb"));
    }

    #[test]
    fn a_placeholder_matches_one_non_empty_segment() {
        assert!(matches("cases/{id}", "cases/wf_1"));
        assert!(!matches("cases/{id}", "cases/"));
        assert!(!matches("cases/{id}", "cases/a/b"));
        assert!(matches("cases/{id}/notes", "cases/a\nb/notes"));
        assert!(matches("cases/{}/notes", "cases/x/notes"));
    }

    #[test]
    fn general_patterns_combine_steps() {
        assert!(matches("a/*/b", "a//b"));
        assert!(matches("a/*/b", "a/x/y/b"));
        assert!(!matches("a/*/b", "a/b"));
        assert!(matches("a/*{id}", "a/xyz"));
        assert!(!matches("a/*{id}", "a/"));
        assert!(matches("x-{id}/*", "x-é/"));
    }

    #[test]
    fn characters_the_regex_engine_would_read_are_rejected() {
        for bad in [
            "", "a.b", "a+", "cases*", "a/**", "{a}{b}", "a/{b", "a/}", "a b", "a,b", "{a-b}",
        ] {
            assert!(compile(bad).is_err(), "{bad:?} compiled");
        }
        assert_eq!(compile("*").unwrap(), ObjectPattern::Any);
        assert_eq!(compile("roles/owner").unwrap(), ObjectPattern::Exact);
    }
}
