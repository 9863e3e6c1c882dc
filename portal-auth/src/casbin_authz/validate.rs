//! What a policy line must look like before either engine takes it.

use portal_core::access::{Domain, PolicyLine};
use portal_core::tenancy::RoleName;

use super::PolicyError;
use super::pattern;

/// The longest role inheritance chain the index accepts, in `g` lines.
///
/// casbin's role manager stops its search ten links away from the principal; the
/// principal's own link to its role is the first, and one more is kept as a margin, so
/// every chain the index accepts is one casbin follows to its end.
pub const MAX_INHERITANCE_DEPTH: usize = 8;

/// Checks a line for the compiled index: names, object pattern, action, and a domain the
/// line's kind may use.
///
/// # Errors
///
/// [`PolicyError::InvalidLine`] with the reason.
pub(crate) fn compiled_line(line: &PolicyLine) -> Result<(), PolicyError> {
    names(line)?;
    match line {
        PolicyLine::Permission(rule) => {
            pattern::compile(&rule.object).map_err(|reason| PolicyError::invalid(line, reason))?;
            action(&rule.action).map_err(|reason| PolicyError::invalid(line, reason))?;
        }
        PolicyLine::Inherit { domain, .. } => {
            if *domain == Domain::AllOrgs {
                return Err(PolicyError::invalid(
                    line,
                    "role inheritance names one org or `platform`; the template `*` holds permissions only",
                ));
            }
        }
    }
    Ok(())
}

/// Checks a line for casbin's Enforcer under another model: only the role names, which
/// must stay apart from principals; objects and actions are the model's business.
///
/// # Errors
///
/// [`PolicyError::InvalidLine`] with the reason.
pub(crate) fn fallback_line(line: &PolicyLine) -> Result<(), PolicyError> {
    names(line)?;
    if let PolicyLine::Permission(rule) = line
        && (rule.object.is_empty() || rule.action.is_empty())
    {
        return Err(PolicyError::invalid(
            line,
            "the object and the action must not be empty",
        ));
    }
    Ok(())
}

fn names(line: &PolicyLine) -> Result<(), PolicyError> {
    let checked = match line {
        PolicyLine::Permission(rule) => role_name(&rule.subject),
        PolicyLine::Inherit { role, parent, .. } if role == parent => Err("a role cannot inherit from itself"),
        PolicyLine::Inherit { role, parent, .. } => role_name(role).and_then(|()| role_name(parent)),
    };
    checked.map_err(|reason| PolicyError::invalid(line, reason))
}

/// A role name is a [`RoleName`], and never looks like a principal: casbin matches a
/// request's subject against role names too, so a role named like a user would grant
/// that user its rules directly.
fn role_name(name: &str) -> Result<(), &'static str> {
    if !RoleName::is_valid(name) {
        return Err("a role name is 1 to 64 of `a-z 0-9 _ -`, starting with a letter");
    }
    if name.starts_with("usr_") || name.starts_with("key_") {
        return Err("role names starting with `usr_` or `key_` are kept for principals");
    }
    Ok(())
}

/// An action is `*` or 1 to 64 of `a-z A-Z 0-9 _ - . :`.
fn action(action: &str) -> Result<(), &'static str> {
    let ok = action == "*"
        || ((1..=64).contains(&action.len())
            && action
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')));
    if ok {
        Ok(())
    } else {
        Err("an action is `*` or 1 to 64 of `a-z A-Z 0-9 _ - . :`")
    }
}
