//! Shipped definitions: a support case, a return request with an approval, and a quote
//! approval needing two approvers. Used by tests and examples, and a starting point for
//! a host's own definitions.
//!
//! Each function builds and checks its definition; the checks cannot fail for these
//! fixed definitions (a unit test proves it), but the signature stays honest.
//!
//! The permissions they ask for are granted to the built-in roles by
//! [`RoleTableAuthorizer`](crate::access::RoleTableAuthorizer): members may read, create
//! and move cases, returns and quotes; viewers may read them; admins and owners may do
//! everything, including `approve`.

use serde::{Deserialize, Serialize};
use time::Duration;

use super::definition::{DefinitionError, GuardFailure, WorkflowDefinition};

/// The payload of a support case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportCase {
    /// What the customer reports.
    pub subject: String,
    /// The customer's own reference, if any.
    #[serde(default)]
    pub customer_reference: Option<String>,
}

/// The payload of a return request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRequest {
    /// The order the goods came with.
    pub order_id: String,
    /// The amount to refund, in cents.
    pub amount_cents: u64,
    /// Why the customer returns the goods.
    pub reason: String,
}

/// The payload of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The customer quoted.
    pub customer: String,
    /// The quoted amount, in cents.
    pub amount_cents: u64,
}

/// The largest refund a return may pay out without a manual process: 10,000.00.
pub const REFUND_LIMIT_CENTS: u64 = 1_000_000;

/// `support_case` v1 (resource `cases`):
/// `open → triaged → in_progress ⇄ waiting_on_customer → resolved → closed`, and
/// `reopen` from `resolved` back to `in_progress`.
///
/// `open` is due within a day and `triaged` within three; `triage` needs a `priority`
/// input, `start` needs an assignee, `ask_customer` a `question` and `resolve` a
/// `resolution`. Every transition asks `cases/* write`.
///
/// # Errors
///
/// None in practice: the definition is fixed and checked by a unit test.
pub fn support_case() -> Result<WorkflowDefinition, DefinitionError> {
    WorkflowDefinition::builder::<SupportCase>("support_case", 1)
        .resource("cases")
        .initial("open")
        .state("triaged")
        .state("in_progress")
        .state("waiting_on_customer")
        .state("resolved")
        .terminal("closed")
        .due_within("open", Duration::days(1))
        .due_within("triaged", Duration::days(3))
        .transition("triage", |t| {
            t.from("open")
                .to("triaged")
                .permission("cases/*", "write")
                .input("priority")
        })
        .transition("start", |t| {
            t.from("triaged")
                .to("in_progress")
                .permission("cases/*", "write")
                .guard("assigned", |_: &SupportCase, ctx| match ctx.assignee {
                    Some(_) => Ok(()),
                    None => Err(GuardFailure::new("the case has no assignee")),
                })
        })
        .transition("ask_customer", |t| {
            t.from("in_progress")
                .to("waiting_on_customer")
                .permission("cases/*", "write")
                .input("question")
        })
        .transition("customer_replied", |t| {
            t.from("waiting_on_customer")
                .to("in_progress")
                .permission("cases/*", "write")
        })
        .transition("resolve", |t| {
            t.from("in_progress")
                .to("resolved")
                .permission("cases/*", "write")
                .input("resolution")
        })
        .transition("close", |t| {
            t.from("resolved").to("closed").permission("cases/*", "write")
        })
        .transition("reopen", |t| {
            t.from("resolved").to("in_progress").permission("cases/*", "write")
        })
        .build()
}

/// `return_request` v1 (resource `returns`): `requested → approved → received →
/// refunded`, or `requested → rejected`.
///
/// `approve` needs one approval from a holder of `returns/* approve` other than the
/// requester; a reject vote, or an approver firing `reject`, ends in `rejected`.
/// `requested` is due within two days. `refund` asks `returns/* refund` and refuses
/// amounts over [`REFUND_LIMIT_CENTS`].
///
/// # Errors
///
/// None in practice: the definition is fixed and checked by a unit test.
pub fn return_request() -> Result<WorkflowDefinition, DefinitionError> {
    WorkflowDefinition::builder::<ReturnRequest>("return_request", 1)
        .resource("returns")
        .initial("requested")
        .state("approved")
        .state("received")
        .terminal("refunded")
        .terminal("rejected")
        .due_within("requested", Duration::days(2))
        .transition("approve", |t| {
            t.from("requested")
                .to("approved")
                .approvals(1, "returns/*", "approve", "reject")
        })
        .transition("reject", |t| {
            t.from("requested").to("rejected").permission("returns/*", "approve")
        })
        .transition("receive", |t| {
            t.from("approved").to("received").permission("returns/*", "write")
        })
        .transition("refund", |t| {
            t.from("received")
                .to("refunded")
                .permission("returns/*", "refund")
                .guard("within_refund_limit", |r: &ReturnRequest, _| {
                    if r.amount_cents <= REFUND_LIMIT_CENTS {
                        Ok(())
                    } else {
                        Err(GuardFailure::new("the amount is over the refund limit"))
                    }
                })
        })
        .build()
}

/// `quote_approval` v1 (resource `quotes`): `draft → pending_approval → approved →
/// sent`, or `pending_approval → rejected → draft` to revise.
///
/// `approve` needs two approvals from holders of `quotes/* approve` (of however many
/// there are: three in the tests) other than the requester; one reject vote sends the
/// quote to `rejected`. `submit` refuses a quote of zero. `pending_approval` is due
/// within two days.
///
/// # Errors
///
/// None in practice: the definition is fixed and checked by a unit test.
pub fn quote_approval() -> Result<WorkflowDefinition, DefinitionError> {
    WorkflowDefinition::builder::<Quote>("quote_approval", 1)
        .resource("quotes")
        .initial("draft")
        .state("pending_approval")
        .state("approved")
        .state("rejected")
        .terminal("sent")
        .due_within("pending_approval", Duration::days(2))
        .transition("submit", |t| {
            t.from("draft")
                .to("pending_approval")
                .permission("quotes/*", "write")
                .guard("has_amount", |q: &Quote, _| {
                    if q.amount_cents > 0 {
                        Ok(())
                    } else {
                        Err(GuardFailure::new("a quote of zero cannot be submitted"))
                    }
                })
        })
        .transition("approve", |t| {
            t.from("pending_approval")
                .to("approved")
                .approvals(2, "quotes/*", "approve", "reject")
        })
        .transition("reject", |t| {
            t.from("pending_approval")
                .to("rejected")
                .permission("quotes/*", "approve")
        })
        .transition("revise", |t| {
            t.from("rejected").to("draft").permission("quotes/*", "write")
        })
        .transition("send", |t| {
            t.from("approved").to("sent").permission("quotes/*", "write")
        })
        .build()
}

/// Every shipped definition.
///
/// # Errors
///
/// None in practice: the definitions are fixed and checked by a unit test.
pub fn all() -> Result<Vec<WorkflowDefinition>, DefinitionError> {
    Ok(vec![support_case()?, return_request()?, quote_approval()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_definition_builds() {
        let all = all().unwrap();
        assert_eq!(
            all.iter().map(WorkflowDefinition::name).collect::<Vec<_>>(),
            ["support_case", "return_request", "quote_approval"]
        );
    }

    #[test]
    fn the_support_case_diagram_shows_the_loop_and_the_reopen() {
        let diagram = support_case().unwrap().to_mermaid();
        assert!(diagram.contains("in_progress --> waiting_on_customer: ask_customer"));
        assert!(diagram.contains("waiting_on_customer --> in_progress: customer_replied"));
        assert!(diagram.contains("resolved --> in_progress: reopen"));
        assert!(diagram.contains("closed --> [*]"));
    }

    #[test]
    fn the_quote_needs_two_approvals() {
        let quote = quote_approval().unwrap();
        let rule = quote.transition("approve").unwrap().approval().unwrap();
        assert_eq!(rule.required, 2);
        assert_eq!(rule.on_reject, "reject");
        assert!(
            quote
                .to_mermaid()
                .contains("pending_approval --> approved: approve (2 approvals)")
        );
    }
}
