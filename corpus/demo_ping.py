"""A real `ping -c 3` from the client to the server (the peers' own stacks answer)."""

from statewall.lab.scenario import Run, Scenario

SCENARIO = Scenario(
    name="demo_ping",
    description=__doc__,
    steps=[Run(client="ping -n -c 3 -i 1 203.0.113.2", quiet=0.5)],
)
