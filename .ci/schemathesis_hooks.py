"""schemathesis hooks for .ci/schemathesis.sh: the rules no JSON schema can state.

The OpenAPI document states every rule of a single field (patterns, lengths, formats,
item counts, one payload schema per workflow definition). A few rules compare a field
with another field, with the clock, or with the data the server holds; docs/http.md
lists them ("Contract testing"). A schema-valid case that breaks one of them is not a
valid request, so before a *positive* case is sent (one schemathesis generated to be
accepted) this hook moves it inside those rules, the way `[parameters]` in the generated
schemathesis.toml gives the path ids real values:

- a window's `from` before its `until`, and an export's window at most 31 days
  (`GET .../diagnostics/timeline`, `GET .../diagnostics/export`), and an audit log's
  `from` before its `until` (`GET .../audit-events`, `GET .../audit-events/export`);
- an API key's `expires_at` in the future and at most a year away;
- a delegation's `ends_at` after its `starts_at` (default now), and its `to` another
  member of the org (PORTAL_OTHER_MEMBER);
- a workflow's `assignee` a member of the org (PORTAL_OTHER_MEMBER);
- a support grant's `staff` someone who is no member of the org (PORTAL_SUPPORT_STAFF);
- a role's `parent` another role than itself;
- a webhook endpoint's `url` a public https host (the document cannot say which hosts are
  public) and its `event_types` names of the catalog, and a replay's `since` before its `until`;
- an integer written without a fraction (`5`, not `5.0`); no NUL and no number beyond
  f64's range nested in a free-form object;
- each positive request's `Idempotency-Key` a fresh one: the same key with another body
  is `422 idempotency.key_reused` by design (Stripe's semantics), and schemathesis draws
  keys from a small space.

Negative cases (generated to be refused) are left as generated. schemathesis runs this
hook in its coverage, fuzzing and stateful phases, not in its examples phase: the
generated schemathesis.toml turns that phase off for the operations these rules concern.
"""

import datetime
import os
import uuid

import schemathesis

MEMBER = os.environ.get("PORTAL_OTHER_MEMBER")
STAFF = os.environ.get("PORTAL_SUPPORT_STAFF")
EXPORT_WINDOW = datetime.timedelta(days=31)
# The largest magnitude serde_json reads as a number (beyond it, f64 overflows).
LARGEST_NUMBER = 10**308


def _positive(case):
    meta = getattr(case, "meta", None)
    return meta is None or not meta.generation.mode.is_negative


def _parse(text):
    if not isinstance(text, str):
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    return value


def _text(value):
    return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _window(query, longest):
    """`from` before `until` (and within `longest` of it); `until` defaults to now."""
    start = _parse(query.get("from"))
    end = _parse(query.get("until"))
    if start is None:
        return
    limit = end if end is not None else _now()
    if start >= limit or (longest is not None and limit - start > longest):
        try:
            query["from"] = _text(limit - datetime.timedelta(hours=1))
        except (OverflowError, ValueError):
            query.pop("from", None)
            query.pop("until", None)


def _plain(value):
    """`value` with integral floats as integers, NUL removed from every string and key, and
    integers past serde_json's range (a number it cannot read as i64, u64 or f64) as 0.

    JSON Schema counts `5.0` as an integer, serde's integers do not; and the document
    states the no-NUL rule and the typed fields' ranges, not those of the values nested in
    a free-form object (`payload`, `input`).
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_NUMBER:
        return 0
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    return value


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    if isinstance(case.body, (dict, list)):
        case.body = _plain(case.body)
    path = case.operation.path
    method = case.method.upper()
    headers = case.headers
    if headers:
        for name in list(headers.keys()):
            if name.lower() == "idempotency-key":
                headers[name] = uuid.uuid4().hex
    query = case.query if hasattr(case.query, "get") else None
    body = case.body if isinstance(case.body, dict) else None
    if query is not None and path.endswith("/diagnostics/timeline"):
        _window(query, None)
    if query is not None and path.endswith("/diagnostics/export"):
        _window(query, EXPORT_WINDOW)
    if query is not None and (path.endswith("/audit-events") or path.endswith("/audit-events/export")):
        _window(query, None)
    if body is None or method not in ("POST", "PUT", "PATCH"):
        return case
    if "/webhook-endpoints" in path and body.get("url") is not None:
        # The document states an absolute https URL; that its host be public (no loopback,
        # private or link-local address, no credentials) it cannot state: a positive case
        # names a public host.
        body["url"] = "https://hooks.example.com/schemathesis"
    if "/webhook-endpoints" in path and isinstance(body.get("event_types"), list):
        # Event types are names of the catalog (`GET /v1/webhook-event-types`), which the
        # document does not enumerate (a host adds its own): a positive case names real ones.
        known = ["member.added", "member.removed", "invitation.created", "invitation.accepted"]
        body["event_types"] = known[: min(len(body["event_types"]), len(known))]
    if path.endswith("/replay") and "since" in body:
        start = _parse(body.get("since"))
        end = _parse(body.get("until"))
        if start is None or end is None or start >= end:
            body["since"] = _text(_now() - datetime.timedelta(days=1))
            body["until"] = _text(_now())
    if path.endswith("/api-keys"):
        end = _parse(body.get("expires_at"))
        if end is None or end <= _now() + datetime.timedelta(minutes=5) or end > _now() + datetime.timedelta(days=360):
            body["expires_at"] = _text(_now() + datetime.timedelta(days=30))
    elif path.endswith("/support-grants"):
        if STAFF:
            body["staff"] = STAFF
    elif path.endswith("/delegations"):
        if MEMBER:
            body["to"] = MEMBER
        start = _parse(body.get("starts_at"))
        end = _parse(body.get("ends_at"))
        floor = start if start is not None else _now() + datetime.timedelta(minutes=5)
        if end is None or end <= floor:
            try:
                body["ends_at"] = _text(floor + datetime.timedelta(days=1))
            except (OverflowError, ValueError):
                body["starts_at"] = None
                body["ends_at"] = _text(_now() + datetime.timedelta(days=1))
    elif path.endswith("/workflows") or path.endswith("/assignee"):
        if MEMBER and body.get("assignee") is not None:
            body["assignee"] = MEMBER
    elif path.endswith("/roles") and "members" not in path:
        if body.get("parent") is not None and body.get("parent") == body.get("name"):
            body["parent"] = "viewer"
    elif path.endswith("/roles/{role}") and method == "PUT":
        role = (case.path_parameters or {}).get("role")
        if body.get("parent") is not None and body.get("parent") == role:
            body["parent"] = "viewer"
    return case


PAYLOAD_FIELDS = {"subject", "customer_reference", "order_id", "amount_cents", "reason", "customer"}


def _integral(value):
    """`value` with integral floats written as integers, at any depth."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


@schemathesis.hook
def map_body(context, body):
    """The fuzzing phase's bodies, positive or negative (this hook cannot tell them apart):
    only what no schema constrains is changed, so no negative case becomes a valid one.

    Integral floats become integers anywhere (JSON Schema takes `5.0` wherever it takes
    `5`); the values inside a free-form object (a transition's or a vote's `input`, the
    fields of a `payload` no definition names) lose their NUL and their numbers past f64's
    range, which no schema there states.
    """
    if not isinstance(body, dict):
        return body
    body = _integral(body)
    if isinstance(body.get("input"), dict):
        body["input"] = {key: _plain(value) for key, value in body["input"].items()}
    if isinstance(body.get("payload"), dict):
        body["payload"] = {
            key: value if key in PAYLOAD_FIELDS else _plain(value) for key, value in body["payload"].items()
        }
    return body
