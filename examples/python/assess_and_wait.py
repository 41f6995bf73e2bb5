#!/usr/bin/env python3
"""Lists the fleet's non-compliant machines, asks one for a fresh assessment and waits for it.

Queries and the mutation with the gql client (https://pypi.org/project/gql/), the wait with a
`machineChanged` subscription over graphql-ws (the `graphql-transport-ws` protocol):

    pip install 'gql[requests,websockets]==4.4.0'
    FLEETPATCH_SERVER=http://localhost:4000 FLEETPATCH_TOKEN=fp_... python3 assess_and_wait.py [MACHINE_NAME]

An OPERATOR or ADMIN token. Without MACHINE_NAME, the first non-compliant machine is assessed.
Exits 0 once the machine's new assessment has arrived, 1 on an error or after 60 s without it.
"""
import asyncio
import os
import sys

from gql import Client, gql
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

SERVER = os.environ.get("FLEETPATCH_SERVER", "").rstrip("/").removesuffix("/graphql")
TOKEN = os.environ.get("FLEETPATCH_TOKEN", "")

MACHINES = gql("""
query ExampleMachines($after: String) {
  machines(filter: {compliance: [NON_COMPLIANT]}, orderBy: {field: NAME}, first: 100, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id name osName criticalAndSecurityCount lastAssessedAt } }
  }
}
""")
ASSESS = gql("""
mutation ExampleAssess($id: ID!) { assessMachines(machineIds: [$id]) { requested reason } }
""")
CHANGED = gql("""
subscription ExampleMachineChanged($id: ID) { machineChanged(machineId: $id) { id name compliance lastAssessedAt criticalAndSecurityCount } }
""")


def http(query, variables=None):
    """One query or mutation over HTTP (the API takes only subscriptions over the WebSocket)."""
    transport = RequestsHTTPTransport(url=f"{SERVER}/graphql", headers={"authorization": f"Bearer {TOKEN}"})
    with Client(transport=transport, fetch_schema_from_transport=False) as session:
        return session.execute(query, variable_values=variables)


def non_compliant_machines():
    """Every non-compliant machine, following the pages."""
    machines, after = [], None
    while True:
        page = http(MACHINES, {"after": after})["machines"]
        machines += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return machines
        after = page["pageInfo"]["endCursor"]


async def assess_and_wait(machine):
    """Subscribes to the machine's changes, asks for an assessment, and waits for a newer one."""
    transport = WebsocketsTransport(
        url=SERVER.replace("http", "ws", 1) + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"authorization": f"Bearer {TOKEN}"},
    )
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        changes = session.subscribe(CHANGED, variable_values={"id": machine["id"]})
        # The subscription is sent when its first event is awaited: start waiting, then ask.
        first_change = asyncio.ensure_future(changes.__anext__())
        try:
            await asyncio.sleep(0)
            asked = (await asyncio.to_thread(http, ASSESS, {"id": machine["id"]}))["assessMachines"][0]
            if not asked["requested"]:
                raise RuntimeError(f"{machine['name']} could not be asked: {asked['reason']}")
            print(f"assessment of {machine['name']} requested", flush=True)
            change = await first_change
            while True:
                m = change["machineChanged"]
                if m["lastAssessedAt"] and m["lastAssessedAt"] != machine["lastAssessedAt"]:
                    print(f"machineChanged: {m['name']} assessed at {m['lastAssessedAt']}: {m['compliance']}, {m['criticalAndSecurityCount']} critical and security updates missing")
                    return
                change = await changes.__anext__()
        finally:
            first_change.cancel()
            await changes.aclose()  # ends the subscription, so that the socket closes at once


def main():
    if not SERVER or not TOKEN:
        print("set FLEETPATCH_SERVER and FLEETPATCH_TOKEN", file=sys.stderr)
        return 2
    machines = non_compliant_machines()
    print(f"{len(machines)} non-compliant machines")
    for m in machines:
        print(f"  {m['name']}: {m['osName']}, {m['criticalAndSecurityCount']} critical and security updates missing")
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    machine = next((m for m in machines if wanted is None or m["name"] == wanted), None)
    if machine is None:
        print(f"no non-compliant machine named {wanted}" if wanted else "nothing to assess", file=sys.stderr)
        return 1
    try:
        asyncio.run(asyncio.wait_for(assess_and_wait(machine), timeout=60))
    except asyncio.TimeoutError:
        print(f"no new assessment of {machine['name']} within 60 s", file=sys.stderr)
        return 1
    except Exception as error:  # the API's refusal or the socket's end, as one line
        print(f"assess_and_wait: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
