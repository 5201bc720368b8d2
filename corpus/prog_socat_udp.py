"""A UDP exchange between real programs: socat on the server echoes datagrams back (cat),
socat on the client sends three lines 1.2 s apart from a fixed source port and reads the
echoes; afterwards the entry is [ASSURED] (traffic both ways for more than 2 s)."""

from statewall.lab.scenario import Run, Scenario

SCENARIO = Scenario(
    name="prog_socat_udp",
    description=__doc__,
    steps=[Run(server=["socat", "-T", "5", "UDP4-LISTEN:7777,bind=203.0.113.2", "EXEC:cat"],
               client=["socat", "-T", "2",
                       "SYSTEM:echo one; sleep 1.2; echo two; sleep 1.2; echo three; sleep 1",
                       "UDP4:203.0.113.2:7777,sourceport=40600"],
               server_ready=0.5, quiet=1.0, timeout=15)],
)
