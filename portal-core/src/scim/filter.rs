//! SCIM filters (RFC 7644 §3.4.2.2), the subset identity providers send: `eq`, `co`, `sw`
//! and `pr` on `userName`, `externalId`, `emails.value`, `displayName`, `members.value`
//! and `id`, joined with `and`/`or` and grouped with parentheses.
//!
//! Keywords and attribute names are matched ignoring case, and an attribute may carry its
//! schema's URN (`urn:ietf:params:scim:schemas:core:2.0:User:userName`). Values are JSON
//! strings. Comparison follows RFC 7643's `caseExact`: `userName`, `emails.value` and
//! `displayName` ignore case; `externalId`, `id` and `members.value` do not.

use crate::error::PortalError;
use crate::ids::UserId;

use super::{ScimGroup, ScimUser};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 2048;
/// The deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 16;

/// An attribute a filter may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// `id`.
    Id,
    /// `userName`.
    UserName,
    /// `externalId`.
    ExternalId,
    /// `emails.value` (or `emails`).
    EmailsValue,
    /// `displayName`.
    DisplayName,
    /// `members.value` (or `members`).
    MembersValue,
}

impl Attr {
    fn parse(name: &str) -> Option<Self> {
        // A full URN names the attribute after the schema's last colon.
        let lower = name.to_ascii_lowercase();
        let short = match lower.strip_prefix("urn:ietf:params:scim:schemas:core:2.0:") {
            Some(rest) => rest.split_once(':').map_or(rest, |(_, attr)| attr),
            None => lower.as_str(),
        };
        Some(match short {
            "id" => Attr::Id,
            "username" => Attr::UserName,
            "externalid" => Attr::ExternalId,
            "emails" | "emails.value" => Attr::EmailsValue,
            "displayname" => Attr::DisplayName,
            "members" | "members.value" => Attr::MembersValue,
            _ => return None,
        })
    }

    fn case_exact(self) -> bool {
        matches!(self, Attr::Id | Attr::ExternalId | Attr::MembersValue)
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `attr op "value"`.
    Compare {
        /// The attribute.
        attr: Attr,
        /// The operator.
        op: CompareOp,
        /// The value, unescaped.
        value: String,
    },
    /// `attr pr`: the attribute has a value.
    Present(Attr),
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
}

fn invalid(message: impl Into<String>) -> PortalError {
    PortalError::invalid_field("filter", message)
}

impl Filter {
    /// Parses a filter.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `filter`) for a filter longer than
    /// [`MAX_FILTER_LEN`], nested deeper than [`MAX_DEPTH`], with an unknown attribute or
    /// operator, an unterminated string, or anything else outside the grammar. (SCIM's
    /// HTTP layer answers it as `400` with `scimType: invalidFilter`.)
    pub fn parse(text: &str) -> Result<Self, PortalError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(invalid(format!("the filter is longer than {MAX_FILTER_LEN} bytes")));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let filter = parser.or(0)?;
        if parser.at != parser.tokens.len() {
            return Err(invalid("unexpected text after the filter"));
        }
        Ok(filter)
    }

    /// Whether `user` matches.
    pub fn matches_user(&self, user: &ScimUser) -> bool {
        self.matches(&|attr| match attr {
            Attr::Id => vec![user.user.to_string()],
            Attr::UserName => vec![user.user_name.clone()],
            Attr::ExternalId => user.external_id.iter().cloned().collect(),
            Attr::EmailsValue => user.profile.emails.iter().map(|e| e.value.clone()).collect(),
            Attr::DisplayName => user.profile.display_name.iter().cloned().collect(),
            Attr::MembersValue => Vec::new(),
        })
    }

    /// Whether `group` matches.
    pub fn matches_group(&self, group: &ScimGroup) -> bool {
        self.matches(&|attr| match attr {
            Attr::Id => vec![group.id.to_string()],
            Attr::DisplayName => vec![group.display_name.clone()],
            Attr::ExternalId => group.external_id.iter().cloned().collect(),
            Attr::MembersValue => group.members.iter().map(ToString::to_string).collect(),
            Attr::UserName | Attr::EmailsValue => Vec::new(),
        })
    }

    fn matches(&self, values: &dyn Fn(Attr) -> Vec<String>) -> bool {
        match self {
            Filter::And(a, b) => a.matches(values) && b.matches(values),
            Filter::Or(a, b) => a.matches(values) || b.matches(values),
            Filter::Present(attr) => values(*attr).iter().any(|v| !v.is_empty()),
            Filter::Compare { attr, op, value } => {
                let fold = |s: &str| {
                    if attr.case_exact() {
                        s.to_owned()
                    } else {
                        s.to_lowercase()
                    }
                };
                let wanted = fold(value);
                values(*attr).iter().any(|v| {
                    let v = fold(v);
                    match op {
                        CompareOp::Eq => v == wanted,
                        CompareOp::Co => v.contains(&wanted),
                        CompareOp::Sw => v.starts_with(&wanted),
                    }
                })
            }
        }
    }
}

/// What a store can find through an index: the candidates a [`Filter`] narrows to.
///
/// [`Filter::lookup`] derives it from an `eq` or `sw` comparison (alone, or one side of an
/// `and`) on `userName`, `externalId`, `emails.value` or `displayName`, or from `members.value
/// eq` a user id; the caller still applies the whole filter to what the store answers.
/// Keys are folded as the filter compares them ([`Attr`]'s `caseExact`): lowercased for
/// `userName`, `emails.value` and `displayName`, as written for `externalId`. A lookup on
/// an attribute the resource does not have (`members.value` of a user, `userName` or
/// `emails.value` of a group, `id`) matches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The resources whose folded `attr` equals `key`.
    Equals {
        /// The attribute.
        attr: Attr,
        /// The folded value.
        key: String,
    },
    /// The resources whose folded `attr` starts with `key`: the values `v` with `key <= v
    /// < end` in code point order (which is UTF-8's byte order), `end` being `key` with
    /// its last character incremented.
    StartsWith {
        /// The attribute.
        attr: Attr,
        /// The folded prefix.
        key: String,
        /// The first value past every value that starts with `key`.
        end: String,
    },
    /// The groups with this member.
    Member(UserId),
}

/// The first string past every string that starts with `prefix` (in code point order),
/// if there is one: `prefix` with its last character incremented, trailing
/// `char::MAX`es dropped first.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl Attr {
    /// `value` folded as filters compare this attribute.
    fn fold(self, value: &str) -> String {
        if self.case_exact() {
            value.to_owned()
        } else {
            value.to_lowercase()
        }
    }
}

impl Lookup {
    /// The lookup of one attribute's value, `prefix` for `sw`. `None` when no index
    /// serves it: `id`, `members.value` other than `eq` a user id, an empty prefix.
    fn of(attr: Attr, op: CompareOp, value: &str) -> Option<Self> {
        match (attr, op) {
            (Attr::MembersValue, CompareOp::Eq) => value.parse::<UserId>().ok().map(Lookup::Member),
            (Attr::UserName | Attr::ExternalId | Attr::EmailsValue | Attr::DisplayName, CompareOp::Eq) => {
                Some(Lookup::Equals {
                    attr,
                    key: attr.fold(value),
                })
            }
            (Attr::UserName | Attr::ExternalId | Attr::EmailsValue | Attr::DisplayName, CompareOp::Sw) => {
                let key = attr.fold(value);
                let end = prefix_end(&key)?;
                Some(Lookup::StartsWith { attr, key, end })
            }
            _ => None,
        }
    }

    /// Whether one folded value of the attribute matches.
    fn holds(&self, attr: Attr, value: &str) -> bool {
        match self {
            Lookup::Equals { attr: a, key } => *a == attr && a.fold(value) == *key,
            Lookup::StartsWith { attr: a, key, .. } => *a == attr && a.fold(value).starts_with(key.as_str()),
            Lookup::Member(_) => false,
        }
    }

    /// Whether `user` is one of the lookup's candidates (what an in-memory store answers).
    pub fn matches_user(&self, user: &ScimUser) -> bool {
        let attr = match self {
            Lookup::Equals { attr, .. } | Lookup::StartsWith { attr, .. } => *attr,
            Lookup::Member(_) => return false,
        };
        match attr {
            Attr::UserName => self.holds(attr, &user.user_name),
            Attr::ExternalId => user.external_id.as_deref().is_some_and(|v| self.holds(attr, v)),
            Attr::EmailsValue => user.profile.emails.iter().any(|e| self.holds(attr, &e.value)),
            Attr::DisplayName => user
                .profile
                .display_name
                .as_deref()
                .is_some_and(|v| self.holds(attr, v)),
            Attr::Id | Attr::MembersValue => false,
        }
    }

    /// Whether `group` is one of the lookup's candidates.
    pub fn matches_group(&self, group: &ScimGroup) -> bool {
        let attr = match self {
            Lookup::Equals { attr, .. } | Lookup::StartsWith { attr, .. } => *attr,
            Lookup::Member(member) => return group.members.contains(member),
        };
        match attr {
            Attr::DisplayName => self.holds(attr, &group.display_name),
            Attr::ExternalId => group.external_id.as_deref().is_some_and(|v| self.holds(attr, v)),
            Attr::UserName | Attr::EmailsValue | Attr::Id | Attr::MembersValue => false,
        }
    }
}

impl Filter {
    /// The index lookup whose candidates hold every resource that matches the filter,
    /// if there is one: an `eq`/`sw` comparison that [`Lookup`] serves, alone or as
    /// either side of an `and` (the left one first). `co`, `pr`, `or` and `id` have none:
    /// the caller reads the org's records and applies the filter to each.
    pub fn lookup(&self) -> Option<Lookup> {
        match self {
            Filter::Compare { attr, op, value } => Lookup::of(*attr, *op, value),
            Filter::And(a, b) => a.lookup().or_else(|| b.lookup()),
            Filter::Present(_) | Filter::Or(..) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
    Text(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, PortalError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                // A JSON string: find its closing quote, then let serde_json unescape it.
                chars.next();
                let mut escaped = false;
                let mut end = None;
                for (i, c) in chars.by_ref() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| invalid("a string is not terminated"))?;
                let value: String = serde_json::from_str(&text[start..=end])
                    .map_err(|_| invalid("a string holds an invalid escape"))?;
                tokens.push(Token::Text(value));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '$' => {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.' | ':' | '-') {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(text[start..end].to_owned()));
            }
            other => return Err(invalid(format!("unexpected character `{}`", other.escape_default()))),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self, depth: usize) -> Result<Filter, PortalError> {
        let mut left = self.and(depth)?;
        while self.peek_word("or") {
            self.at += 1;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, PortalError> {
        let mut left = self.factor(depth)?;
        while self.peek_word("and") {
            self.at += 1;
            let right = self.factor(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self, depth: usize) -> Result<Filter, PortalError> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Open) => {
                if depth >= MAX_DEPTH {
                    return Err(invalid(format!("the filter nests deeper than {MAX_DEPTH}")));
                }
                self.at += 1;
                let inner = self.or(depth + 1)?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err(invalid("a parenthesis is not closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Token::Word(name)) => {
                let attr = Attr::parse(&name)
                    .ok_or_else(|| invalid(format!("`{name}` is not an attribute a filter may name")))?;
                self.at += 1;
                let op = match self.tokens.get(self.at) {
                    Some(Token::Word(op)) => op.to_ascii_lowercase(),
                    _ => return Err(invalid("an operator is missing")),
                };
                self.at += 1;
                let op = match op.as_str() {
                    "pr" => return Ok(Filter::Present(attr)),
                    "eq" => CompareOp::Eq,
                    "co" => CompareOp::Co,
                    "sw" => CompareOp::Sw,
                    other => return Err(invalid(format!("the operator `{other}` is not supported"))),
                };
                match self.tokens.get(self.at).cloned() {
                    Some(Token::Text(value)) => {
                        self.at += 1;
                        Ok(Filter::Compare { attr, op, value })
                    }
                    _ => Err(invalid("a comparison needs a string value")),
                }
            }
            _ => Err(invalid("an attribute or `(` is expected")),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::ids::{GroupId, OrgId, UserId};
    use crate::scim::{ScimEmail, ScimProfile};

    fn user() -> ScimUser {
        let at = datetime!(2025-01-01 00:00 UTC);
        ScimUser {
            org: OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            user: UserId::from_uuid(uuid::Uuid::from_u128(2)),
            user_name: "Ada.Lovelace@Example.com".to_owned(),
            external_id: Some("00uAbC".to_owned()),
            active: true,
            profile: ScimProfile {
                display_name: Some("Ada Lovelace".to_owned()),
                emails: vec![ScimEmail {
                    value: "ada@example.com".to_owned(),
                    kind: None,
                    primary: true,
                }],
                ..ScimProfile::default()
            },
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    fn group() -> ScimGroup {
        let at = datetime!(2025-01-01 00:00 UTC);
        ScimGroup {
            org: OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            id: GroupId::from_uuid(uuid::Uuid::from_u128(3)),
            display_name: "Engineering".to_owned(),
            external_id: None,
            members: vec![UserId::from_uuid(uuid::Uuid::from_u128(2))],
            roles: Vec::new(),
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn filters_identity_providers_send_match_as_rfc_7643_says() {
        let member = UserId::from_uuid(uuid::Uuid::from_u128(2)).to_string();
        let cases: &[(&str, bool)] = &[
            (r#"userName eq "ada.lovelace@example.com""#, true),
            (r#"USERNAME EQ "ADA.LOVELACE@EXAMPLE.COM""#, true),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada.lovelace@example.com""#,
                true,
            ),
            (r#"userName eq "ada""#, false),
            (r#"userName sw "ada.""#, true),
            (r#"userName co "LOVELACE""#, true),
            (r#"externalId eq "00uAbC""#, true),
            (r#"externalId eq "00uabc""#, false),
            (r#"emails.value eq "ADA@example.com""#, true),
            (r#"emails eq "ada@example.com""#, true),
            (r#"displayName pr"#, true),
            (r#"displayName eq "Grace" or externalId pr"#, true),
            (r#"displayName eq "Grace" and externalId pr"#, false),
            (
                r#"(userName sw "x" or userName sw "a") and emails.value co "@example""#,
                true,
            ),
            (r#"userName eq "a \"quoted\" name""#, false),
        ];
        for (text, want) in cases {
            let filter = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(filter.matches_user(&user()), *want, "{text}");
        }
        let by_member = Filter::parse(&format!(r#"members.value eq "{member}""#)).unwrap();
        assert!(by_member.matches_group(&group()));
        assert!(!by_member.matches_user(&user()), "users have no members");
        assert!(
            Filter::parse(r#"displayName eq "engineering""#)
                .unwrap()
                .matches_group(&group())
        );
    }

    #[test]
    fn lookups_hold_every_resource_the_filter_matches() {
        let member = UserId::from_uuid(uuid::Uuid::from_u128(2));
        let user_filters = [
            r#"userName eq "ADA.lovelace@example.com""#,
            r#"userName sw "Ada.""#,
            r#"externalId eq "00uAbC""#,
            r#"externalId sw "00uA""#,
            r#"emails.value eq "ADA@example.com""#,
            r#"emails sw "ada@""#,
            r#"displayName eq "ada lovelace""#,
            r#"displayName sw "ADA ""#,
            r#"emails.value co "@example" and userName sw "ada""#,
        ];
        for text in user_filters {
            let filter = Filter::parse(text).unwrap();
            let lookup = filter.lookup().unwrap_or_else(|| panic!("{text} has a lookup"));
            assert!(filter.matches_user(&user()), "{text} matches");
            assert!(
                lookup.matches_user(&user()),
                "{text}: the lookup holds what the filter matches"
            );
        }
        let narrower = Filter::parse(r#"userName sw "x" and emails.value co "@example""#).unwrap();
        assert!(
            !narrower.lookup().unwrap().matches_user(&user()),
            "the left side of `and` narrows"
        );
        for text in [
            r#"userName co "ada""#,
            r#"userName pr"#,
            r#"userName eq "a" or userName eq "b""#,
            r#"id eq "x""#,
            r#"userName sw """#,
            r#"members.value sw "usr""#,
            r#"members.value eq "not an id""#,
        ] {
            assert_eq!(Filter::parse(text).unwrap().lookup(), None, "{text} scans");
        }
        let by_member = Filter::parse(&format!(r#"members.value eq "{member}""#)).unwrap();
        assert_eq!(by_member.lookup(), Some(Lookup::Member(member)));
        assert!(by_member.lookup().unwrap().matches_group(&group()));
        assert!(!by_member.lookup().unwrap().matches_user(&user()));
        let group_name = Filter::parse(r#"displayName sw "ENG""#).unwrap().lookup().unwrap();
        assert!(group_name.matches_group(&group()));
    }

    #[test]
    fn a_prefix_range_ends_past_every_value_with_the_prefix() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(prefix_end("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10ffff}"), None);
        assert_eq!(prefix_end(""), None);
        for (prefix, value) in [("ab", "ab"), ("ab", "abzzz"), ("a\u{10ffff}", "a\u{10ffff}\u{10ffff}x")] {
            let end = prefix_end(prefix).unwrap();
            assert!(
                prefix <= value && value < end.as_str(),
                "{value:?} in [{prefix:?}, {end:?})"
            );
        }
        assert!("ac" >= prefix_end("ab").unwrap().as_str());
    }

    #[test]
    fn malformed_filters_are_invalid_filter_errors_never_panics() {
        let deep = format!("{}userName pr{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_LEN));
        let cases = [
            "",
            "userName",
            "userName eq",
            "userName eq ada",
            r#"userName gt "a""#,
            r#"password eq "x""#,
            r#"userName eq "unterminated"#,
            r#"(userName pr"#,
            r#"userName pr)"#,
            r#"userName pr and"#,
            r#"userName eq "\x""#,
            "userName pr ; drop table users",
            deep.as_str(),
            long.as_str(),
        ];
        for text in cases {
            let err = Filter::parse(text).expect_err(text);
            assert_eq!(err.code(), crate::ErrorCode::InvalidField, "{text}");
            assert_eq!(err.param(), Some("filter"), "{text}");
        }
        let nested = format!("{}userName pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(Filter::parse(&nested).is_ok(), "nesting up to the limit parses");
    }
}
