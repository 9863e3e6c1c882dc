"""Runs scim2-tester's checks against a running SCIM server and prints every result.

Usage: python scim_tester.py BASE_URL TOKEN

BASE_URL is the server's SCIM base (`http://127.0.0.1:PORT/scim/v2`), TOKEN an API key of
one org with the scope `scim provision`. Every check runs (discovery, CRUD, PATCH, query
attributes, misc) on every resource type the server's discovery publishes. Exits 1 when a
check ends ERROR or CRITICAL (a MUST of RFC 7643/7644 broken), 0 otherwise; the counts per
status and every check that did not succeed are printed. The failures that do not apply to
this server are listed in NOT_APPLICABLE with why, and counted as N/A.
"""

import collections
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


# Checks that do not apply to this server, each with why (docs/scim.md lists them too):
# (resource type, check title, a text of the reason) -> why.
NOT_APPLICABLE = {
    ("User", "check_remove_attribute", "did not remove attribute 'active'"):
        "`active` is a boolean every portal user has: removing it deactivates the user "
        "(what Okta and Entra mean by it), so it reads back `false`, not unassigned",
}


def not_applicable(result) -> str | None:
    """Why `result` does not apply to this server, if it is one of NOT_APPLICABLE."""
    for (kind, title, reason), why in NOT_APPLICABLE.items():
        if result.resource_type == kind and result.title == title and reason in (result.reason or ""):
            return why
    return None


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client, raise_exceptions=False)

    counts = collections.Counter()
    failed = []
    for r in results:
        why = not_applicable(r) if r.status in (Status.ERROR, Status.CRITICAL) else None
        status = "N/A" if why else r.status.name
        counts[status] += 1
        if r.status in (Status.SUCCESS, Status.COMPLIANT):
            continue
        where = f"[{r.resource_type}] " if r.resource_type else ""
        print(f"{status:<10} {where}{r.title}: {r.reason}")
        if why:
            print(f"           does not apply: {why}")
        elif r.status in (Status.ERROR, Status.CRITICAL):
            failed.append(r)
            if r.data is not None:
                print(f"           data: {r.data!r}"[:2000])
    print(
        "scim2-tester: "
        + ", ".join(f"{name} {counts[name]}" for name in sorted(counts))
        + f" ({len(results)} checks)"
    )
    if not results:
        print("FATAL: scim2-tester ran no check", file=sys.stderr)
        return 1
    if failed:
        print(f"FATAL: {len(failed)} scim2-tester checks failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
